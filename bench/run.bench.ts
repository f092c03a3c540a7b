// A cold run against the floor: the wall time of a cold five-stage `cc-ci run` of the demo recipe
// against bench/run-floor.mjs, a plain script making the same abra, docker and git steps and
// waiting only on docker's events, on the real swarm and ingress (.ci/setup-swarm.sh,
// .ci/setup-ingress.sh) with the test-only abra. Each round runs both on fresh apps, the order
// flipped every round; the figures are medians. cc-ci's overhead share and reaction latency come
// from each run's results.json `timings`. Everything lives under one scratch dir and a base domain
// of its own, removed at the end.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { median, printTable, scratchDir, scrubSwarm } from './support.js';

const ROUNDS = Number(process.env.BENCH_RUN_ROUNDS ?? 5);
const REACTION_ROUNDS = Number(process.env.BENCH_REACTION_ROUNDS ?? 10);
const IMAGE = 'ccci/busybox:latest';
const CA = '/var/lib/cc-ci-test/ingress-root.pem';
const OVERHEAD_TARGET = 0.05;
const REACTION_TARGET_MS = 100;

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = fileURLToPath(new URL('../dist/runner/cli.js', import.meta.url));
const floor = fileURLToPath(new URL('run-floor.mjs', import.meta.url));
const fixtures = join(root, 'tests', 'fixtures');

/** What results.json's `timings` holds (absent in builds before issue 17's timings). */
interface Timings {
  wallMs: number;
  overheadShare: number;
  reaction: { events: number; medianMs: number | null };
}

interface Reaction {
  events: number;
  medianMs: number | null;
}

/** Runs `args` with node; its wall time in ms, and its stdout. Throws unless it exits 0. */
function timed(args: string[], env: NodeJS.ProcessEnv): { ms: number; stdout: string } {
  const t0 = process.hrtime.bigint();
  const result = spawnSync(process.execPath, args, { env, cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (result.status !== 0) throw new Error(`${args.join(' ')} exited ${result.status ?? result.signal}:\n${result.stderr.slice(-3000)}`);
  return { ms, stdout: result.stdout };
}

/** The run's `timings` from its results.json, or null when the build writes none. */
function timingsOf(runsDir: string, runId: string): Timings | null {
  const file = join(runsDir, runId, 'results.json');
  if (!existsSync(file)) return null;
  return (JSON.parse(readFileSync(file, 'utf8')) as { timings?: Timings }).timings ?? null;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const msOrNa = (ms: number | null): string => (ms === null ? 'n/a' : `${ms.toFixed(1)} ms`);

/** The median of the values, or null when any is missing (a run without timings) or there are none. */
function medianOf(values: (number | null)[]): number | null {
  return values.length === 0 || values.some((v) => v === null) ? null : median(values as number[]);
}

export default async function runBench(): Promise<boolean> {
  const dir = scratchDir('run');
  const base = `benchrun${process.pid}.test`;
  const home = join(dir, 'home');
  const remote = join(dir, 'remote');
  const runs = join(dir, 'runs');
  for (const path of [home, remote, runs, join(dir, 'locks'), join(dir, 'floor')]) mkdirSync(path, { recursive: true });
  execFileSync('bash', [join(fixtures, 'make-recipe-repo.sh'), join(remote, 'ccci-demo')], { stdio: 'ignore' });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    PATH: `${join(fixtures, 'abra')}:${process.env.PATH}`,
    CCCI_TEST_RECIPE_REMOTE_BASE: remote,
    CCCI_RUNS_DIR: runs,
    CCCI_APP_LOCK_DIR: join(dir, 'locks'),
    CCCI_BASE_DOMAIN: base,
    CCCI_INGRESS_CA: CA,
    CCCI_TESTS_DIR: join(dir, 'operator-tests'),
    RECIPE: 'ccci-demo',
  };
  delete env.NODE_OPTIONS;
  delete env.ABRA_DIR;
  try {
    execFileSync('abra', ['server', 'add', '--local'], { env, stdio: 'ignore' });
    const ours: number[] = [];
    const floors: number[] = [];
    const timings: (Timings | null)[] = [];
    const deliveries: Reaction[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const runId = `run-${round}`;
      const work = join(dir, 'floor', String(round));
      mkdirSync(work);
      const ccci = (): void => {
        ours.push(timed([cli, 'run'], { ...env, CCCI_RUN_ID: runId, PR: String(300 + round) }).ms);
        timings.push(timingsOf(runs, runId));
      };
      const plain = (): void => {
        const args = [floor, '--domain', `floor-${round}.${base}`, '--work', work, '--ca', CA];
        const { ms, stdout } = timed(args, env);
        floors.push(ms);
        const figures = JSON.parse(stdout.trim().split('\n').at(-1)!) as { reaction: Reaction; delivery: Reaction };
        deliveries.push(figures.delivery);
      };
      // Flipped every round, so neither side always runs on the machine the other just warmed.
      for (const side of round % 2 === 0 ? [ccci, plain] : [plain, ccci]) side();
      const t = timings.at(-1);
      console.log(
        `  round ${round + 1}/${ROUNDS} (${round % 2 === 0 ? 'cc-ci first' : 'floor first'}): cc-ci ${seconds(ours.at(-1)!)}, floor ${seconds(floors.at(-1)!)}; cc-ci overhead ${
          t ? `${(t.overheadShare * 100).toFixed(2)} %` : 'n/a'
        }; floor: docker event → its arrival ${msOrNa(deliveries.at(-1)!.medianMs)} over ${deliveries.at(-1)!.events} events`,
      );
    }
    const wallOk = printTable(`a cold run against the floor (demo recipe, ${ROUNDS} rounds, medians)`, [
      {
        case: 'cold five-stage `cc-ci run`, wall time',
        ours: median(ours) / 1000,
        baseline: median(floors) / 1000,
        unit: 's',
        baselineName: 'the floor, bench/run-floor.mjs',
        target: 1.1,
      },
    ]);
    const reaction = await reactionCase(base.replaceAll('.', '_'));
    return printTimings(timings, reaction) && wallOk;
  } finally {
    scrubSwarm(base.replaceAll('.', '_'));
  }
}

/**
 * The floor of a reaction: the state polled every 2 ms until `done`, against the last docker event
 * about the stack before it first held. Resolves with that event → first-seen time, in ms.
 */
async function floorReaction(events: { stack: string; atMs: number }[], stack: string, done: () => Promise<boolean>): Promise<number> {
  while (!(await done())) await new Promise((resolve) => setTimeout(resolve, 2));
  const seenAt = performance.timeOrigin + performance.now();
  const last = events.filter((event) => event.stack === stack && event.atMs <= seenAt).at(-1);
  return last === undefined ? Number.NaN : seenAt - last.atMs;
}

/**
 * cc-ci's reaction where it has to wait on docker: in a cold run of the demo, abra's own deploy and
 * undeploy wait for convergence and removal, so cc-ci's waits are met by their first check and
 * react to nothing. Here the runner's own waits (`waitConverged`, `removeStack`, in this process)
 * wait for a service created and then removed behind their back, `REACTION_ROUNDS` times: the
 * timings recorder's event → wait resolved. Beside each wait, the floor polls the same state every
 * 2 ms: event → state first visible, which is how long swarm itself takes to show the change.
 */
async function reactionCase(marker: string): Promise<{ ours: Reaction; floor: number }> {
  const { dockerClient } = await import('../runner/host/docker.js');
  const { engineGet, filters } = await import('../runner/host/engine.js');
  const { timings } = await import('../runner/host/timings.js');
  const engine = <T>(path: string): Promise<T> => engineGet<T>('/var/run/docker.sock', path);
  const docker = dockerClient({ log: () => undefined });
  const events: { stack: string; atMs: number }[] = [];
  const since = ((performance.timeOrigin + performance.now()) / 1000).toFixed(3);
  const stream = request({ socketPath: '/var/run/docker.sock', path: `/events?since=${since}` }, (response) => {
    let buffered = '';
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines.filter(Boolean)) {
        const event = JSON.parse(line) as { timeNano: number; Actor: { Attributes: Record<string, string> } };
        const attributes = event.Actor.Attributes;
        const stack = attributes['com.docker.stack.namespace'] ?? attributes.name?.replace(/_app$/, '') ?? '';
        events.push({ stack, atMs: event.timeNano / 1e6 });
      }
    });
  });
  stream.on('error', () => undefined);
  stream.end();
  const floors: number[] = [];
  try {
    for (let round = 0; round < REACTION_ROUNDS; round++) {
      const stack = `${marker}_r${round}`;
      const label = `com.docker.stack.namespace=${stack}`;
      const services = () =>
        engine<{ ServiceStatus?: { RunningTasks: number; DesiredTasks: number } }[]>(
          `/services?status=true&${filters({ name: [`${stack}_`] })}`,
        );
      const containers = () => engine<unknown[]>(`/containers/json?all=1&${filters({ label: [label] })}`);
      execFileSync('docker', [
        ...['service', 'create', '--detach', '--no-resolve-image', '--name', `${stack}_app`, '--label', label],
        ...['--container-label', label, '--stop-grace-period', '1s', IMAGE, 'sleep', '3600'],
      ]);
      const up = floorReaction(events, stack, async () => (await services()).some((s) => s.ServiceStatus?.RunningTasks === 1));
      await docker.waitConverged(stack, 60_000);
      floors.push(await up);
      execFileSync('docker', ['service', 'rm', `${stack}_app`]);
      const gone = floorReaction(events, stack, async () => (await services()).length === 0 && (await containers()).length === 0);
      await docker.removeStack(stack);
      floors.push(await gone);
    }
  } finally {
    stream.destroy();
  }
  const { events: waits, medianMs } = timings.report().reaction;
  const floor = median(floors.filter((ms) => !Number.isNaN(ms)));
  console.log(
    `  reaction: ${waits} waits ended on an event, median ${msOrNa(medianMs)}; the floor saw the state ${msOrNa(floor)} after its event`,
  );
  return { ours: { events: waits, medianMs }, floor };
}

/**
 * cc-ci's own time, from results.json's `timings`: its overhead share of the wall time and its
 * reaction latency (median over the runs of each run's median), against absolute targets. A run
 * without timings makes its row n/a and missed.
 */
function printTimings(timings: (Timings | null)[], reaction: { ours: Reaction; floor: number }): boolean {
  const overhead = medianOf(timings.map((t) => (t ? t.overheadShare : null)));
  const ours = reaction.ours.medianMs;
  const overheadMet = overhead !== null && overhead <= OVERHEAD_TARGET;
  const reactionMet = ours !== null && ours <= REACTION_TARGET_MS;
  const verdict = (met: boolean, value: number | null): string => (value === null ? 'MISSED (no figure)' : met ? 'met' : 'MISSED');
  console.log("\n### cc-ci's own time (medians; absolute targets)\n");
  console.log('| case | cc-ci | floor | target |');
  console.log('|---|---|---|---|');
  console.log(
    `| overhead share of a cold run's wall time (results.json \`timings\`) | ${overhead === null ? 'n/a' : `${(overhead * 100).toFixed(2)} %`} | — | ≤ ${OVERHEAD_TARGET * 100} % ${verdict(overheadMet, overhead)} |`,
  );
  console.log(
    `| reaction: docker event → wait resolved (${reaction.ours.events} waits) | ${msOrNa(ours)} | ${msOrNa(reaction.floor)} (event → state first seen, polled every 2 ms) | ≤ ${REACTION_TARGET_MS} ms ${verdict(reactionMet, ours)} |`,
  );
  return overheadMet && reactionMet;
}
