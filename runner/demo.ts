// `cc-ci demo`: what cc-ci is for, on this host, in about a minute. Two CI runs of the bundled demo
// recipe share the swarm; one is SIGKILLed mid-deploy, so nothing of its own tears its app down;
// its retry's janitor reaps that app while the other run, alive, keeps its app and ends green; and
// nothing is left. Every part is the real one (cc-ci run, its lock, its janitor, the swarm) except
// abra: the test-only stand-in of tests/fixtures/abra, put on PATH for these runs alone.
// docs/operations.md#the-demo
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { execa, type ResultPromise } from 'execa';

import { stackName } from '../lib/naming.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'dist', 'runner', 'cli.js');
const FIXTURES = join(ROOT, 'tests', 'fixtures');
const STAND_IN = join(FIXTURES, 'abra');
const RECIPE = 'ccci-demo';
const IMAGE = 'ccci/busybox:latest';
/** Where .ci/setup-ingress.sh leaves the ingress's CA root. */
const INGRESS_CA = '/var/lib/cc-ci-test/ingress-root.pem';
/** How long run A holds in its custom stage: long enough to be live when C's janitor looks. */
const HOLD_SECONDS = 12;

type Print = (line: string) => void;

interface Run {
  name: string;
  pr: string;
  /** Its app domain, as its log names it once it holds the app lock. */
  domain: string;
  log: string;
  results: string;
  process: ResultPromise<typeof RUN_OPTIONS & { env: NodeJS.ProcessEnv }>;
  /** Every line of its output so far. */
  lines: string[];
  /** Resolves with the first line matching, or null when the run ends first. */
  waitFor(pattern: RegExp): Promise<string | null>;
}

interface World {
  dir: string;
  base: string;
  env: NodeJS.ProcessEnv;
}

const RUN_OPTIONS = { detached: true, all: true, reject: false, lines: false, buffer: false, stdin: 'ignore' } as const;

/** The demo, start to end; resolves with its exit code (0 when every claim held). */
export async function runDemo(print: Print): Promise<number> {
  const problems = await preflight();
  if (problems.length > 0) {
    for (const problem of problems) print(`cc-ci demo: ${problem}`);
    print('cc-ci demo: set the host up first, as root: bash .ci/setup-swarm.sh && bash .ci/setup-ingress.sh');
    return 1;
  }
  const world = await makeWorld();
  const runs: Run[] = [];
  const failures: string[] = [];
  const expect = (ok: boolean, claim: string): void => {
    print(`    ${ok ? 'ok  ' : 'FAIL'}  ${claim}`);
    if (!ok) failures.push(claim);
  };
  try {
    print('cc-ci demo: two CI runs of one recipe share this swarm; one is killed, the next run reaps what it left.');
    print(`  abra    the TEST-ONLY STAND-IN ${join(STAND_IN, 'abra')}: not the real abra, on PATH for these runs only`);
    print(`  recipe  ${RECIPE}, two published versions, from ${join(FIXTURES, 'recipes', RECIPE)}`);
    print(
      `  swarm   this node; apps under ${world.base}; ${world.env.CCCI_HEALTH === 'off' ? 'no ingress: health checks off' : 'HTTPS health checks through the ingress'}`,
    );
    print(`  dir     ${world.dir} (runs, logs, lock dir)`);

    print('\n[1] run A (PR 1) and run B (PR 2) start at once: stages install,custom; A holds in custom');
    const a = startRun(world, 'A', '1', HOLD_SECONDS);
    const b = startRun(world, 'B', '2', 0);
    runs.push(a, b);
    for (const run of [a, b]) {
      const held = await run.waitFor(/== app lock held: /);
      run.domain = /== app lock held: (\S+) ==/.exec(held ?? '')?.[1] ?? '(none: see its log)';
      print(`    ${run.name}: ${run.domain}  log ${run.log}`);
    }

    const deploying = await b.waitFor(/Creating service/);
    expect(deploying !== null, 'B reached its deploy (docker is creating its services)');
    if (deploying === null) return report(print, world, runs, failures);
    print('\n[2] B is mid-deploy. `cc-ci locks`: each run holds its app lock');
    print(indent(await locks(world)));

    print(`\n[3] SIGKILL to run B's process group (pid ${b.process.pid}): nothing of B tears down; the kernel drops its lock`);
    process.kill(-b.process.pid!, 'SIGKILL');
    const killed = await b.process;
    expect(killed.signal === 'SIGKILL', `B died of ${killed.signal ?? `exit ${killed.exitCode}`}`);
    const leftOfB = await swarmNames(stackName(b.domain));
    expect(
      leftOfB.length > 0,
      `B's app is still on the swarm, its lock free: ${leftOfB.length} objects (${leftOfB.slice(0, 3).join(', ')}…)`,
    );
    print(indent(await locks(world)));

    print("\n[4] run C, B's retry (PR 2), starts; its janitor sweeps first");
    const c = startRun(world, 'C', '2', 0);
    c.domain = b.domain; // the same PR: the same app domain
    runs.push(c);
    const swept = await c.waitFor(/== janitor: /);
    print(`    C: ${swept ?? '(no janitor line)'}`);
    const reaped = /reaped \[([^\]]*)\]/.exec(swept ?? '')?.[1]?.split(', ') ?? [];
    const live = /live \[([^\]]*)\]/.exec(swept ?? '')?.[1]?.split(', ') ?? [];
    expect(reaped.includes(b.domain), `C's janitor reaped B's app ${b.domain}`);
    expect(live.includes(a.domain) && !reaped.includes(a.domain), `C's janitor left A's app alone: A is live, its lock held`);

    print('\n[5] A and C run to the end');
    for (const run of [a, c]) {
      const done = await run.process;
      expect(done.exitCode === 0, `${run.name} exited ${done.exitCode ?? done.signal}: ${done.exitCode === 0 ? 'green' : 'red'}`);
      print(indent(summaryOf(run)));
      print(`    results: ${run.results}`);
    }
    return await report(print, world, runs, failures);
  } finally {
    await stopRuns(runs);
    await scrub(world);
    for (const name of ['home', 'remote', 'locks', 'operator-A', 'operator-B', 'operator-C'])
      rmSync(join(world.dir, name), { recursive: true, force: true });
  }
}

/** Step [6]: nothing left of the demo's apps, no lock held, no run process; then the verdict. */
async function report(print: Print, world: World, runs: Run[], failures: string[]): Promise<number> {
  const expect = (ok: boolean, claim: string): void => {
    print(`    ${ok ? 'ok  ' : 'FAIL'}  ${claim}`);
    if (!ok) failures.push(claim);
  };
  print('\n[6] what is left');
  const left = await swarmNames(world.base.replaceAll('.', '_'));
  expect(
    left.length === 0,
    `no stack, service, container, volume, secret or network under ${world.base}${left.length ? `: ${left.join(', ')}` : ''}`,
  );
  const held = (await locks(world)).split('\n').filter((line) => /\bheld\b/.test(line) && !/lockfiles? in/.test(line));
  expect(held.length === 0, `no app lock held${held.length ? `: ${held.join('; ')}` : ''}`);
  const alive = runs.filter((run) => run.process.exitCode === null && run.process.signalCode === null);
  expect(alive.length === 0, `no run process alive${alive.length ? `: ${alive.map((run) => run.name).join(', ')}` : ''}`);
  print(
    failures.length === 0
      ? `\ncc-ci demo: ok. Results and logs stay in ${join(world.dir, 'runs')} (rm -rf ${world.dir} when done).`
      : `\ncc-ci demo: ${failures.length} claim${failures.length === 1 ? '' : 's'} failed; the runs' logs are in ${world.dir}.`,
  );
  return failures.length === 0 ? 0 : 1;
}

/** What the host lacks for the demo, one line each. */
async function preflight(): Promise<string[]> {
  const problems: string[] = [];
  const state = await execa('docker', ['info', '--format', '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}'], { reject: false });
  if (state.failed) problems.push(`docker does not answer (${String(state.stderr || state.message).split('\n')[0]})`);
  else if (state.stdout.trim() !== 'active true') problems.push(`this docker node is not a swarm manager (${state.stdout.trim()})`);
  else {
    if ((await execa('docker', ['image', 'inspect', IMAGE], { reject: false })).failed) problems.push(`the image ${IMAGE} is missing`);
    if ((await execa('docker', ['network', 'inspect', 'proxy'], { reject: false })).failed) problems.push('the network proxy is missing');
  }
  if (!existsSync(join(STAND_IN, 'abra'))) problems.push(`the stand-in abra is missing at ${STAND_IN}`);
  return problems;
}

/** A dir of the demo's own, its recipe as a bare repo with two versions, and abra's local server. */
async function makeWorld(): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'ccci-demo-'));
  const base = `demo${randomBytes(2).toString('hex')}.test`;
  const home = join(dir, 'home');
  mkdirSync(home);
  await execa('bash', [join(FIXTURES, 'make-recipe-repo.sh'), join(dir, 'remote', RECIPE), join(FIXTURES, 'recipes', RECIPE)]);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    PATH: `${STAND_IN}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    CCCI_TEST_RECIPE_REMOTE_BASE: join(dir, 'remote'),
    CCCI_RUNS_DIR: join(dir, 'runs'),
    CCCI_APP_LOCK_DIR: join(dir, 'locks'),
    CCCI_BASE_DOMAIN: base,
    CCCI_CONVERGE_TIMEOUT_SECONDS: '120',
    RECIPE,
    STAGES: 'install,custom',
    ...(existsSync(INGRESS_CA) ? { CCCI_INGRESS_CA: INGRESS_CA } : { CCCI_HEALTH: 'off' }),
  };
  mkdirSync(env.CCCI_APP_LOCK_DIR!, { mode: 0o700 });
  await execa('abra', ['server', 'add', '--local'], { env });
  return { dir, base, env };
}

/** Starts `cc-ci run` in a process group of its own, its output into `<dir>/<name>.log`. */
function startRun(world: World, name: string, pr: string, holdSeconds: number): Run {
  // The operator's tests dir of this run: ccci.yml's env makes the demo's pause.sh hold.
  const operator = join(world.dir, `operator-${name}`);
  mkdirSync(join(operator, RECIPE), { recursive: true });
  writeFileSync(join(operator, RECIPE, 'ccci.yml'), `env:\n  CCCI_TEST_CUSTOM_SLEEP: "${holdSeconds}"\n`);
  const runId = `demo-${name.toLowerCase()}`;
  const log = join(world.dir, `${name}.log`);
  const child = execa(process.execPath, [CLI, 'run'], {
    ...RUN_OPTIONS,
    env: { ...world.env, PR: pr, CCCI_RUN_ID: runId, CCCI_TESTS_DIR: operator } as NodeJS.ProcessEnv,
  });
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (line: string | null) => void }[] = [];
  let partial = '';
  child.all!.setEncoding('utf8');
  child.all!.on('data', (chunk: string) => {
    writeFileSync(log, chunk, { flag: 'a' });
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    for (const line of parts) {
      lines.push(line);
      for (const waiter of waiters.filter((w) => w.pattern.test(line))) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  });
  void child.then(() => {
    for (const waiter of waiters.splice(0)) waiter.resolve(null);
  });
  return {
    name,
    pr,
    domain: '',
    log,
    results: join(world.dir, 'runs', runId, 'results.json'),
    process: child,
    lines,
    waitFor: (pattern) => {
      const seen = lines.find((line) => pattern.test(line));
      if (seen !== undefined) return Promise.resolve(seen);
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(null);
      return new Promise((resolve) => waiters.push({ pattern, resolve }));
    },
  };
}

/** `cc-ci locks` of the demo's lock dir. */
async function locks(world: World): Promise<string> {
  const result = await execa(process.execPath, [CLI, 'locks'], { env: world.env, reject: false, all: true });
  return result.all ?? '';
}

/** The run's summary: its output from the `== cc-ci <recipe>` line on. */
function summaryOf(run: Run): string {
  const start = run.lines.findIndex((line) => line.startsWith(`== cc-ci ${RECIPE} `));
  return start === -1 ? `(${run.name} printed no summary: see ${run.log})` : run.lines.slice(start).join('\n');
}

/** Names of stacks, services, containers, volumes, secrets and networks that contain `marker`. */
export async function swarmNames(marker: string): Promise<string[]> {
  const lists = [
    ['stack', 'ls', '--format', '{{.Name}}'],
    ['service', 'ls', '--format', '{{.Name}}'],
    ['ps', '-a', '--format', '{{.Names}}'],
    ['volume', 'ls', '--format', '{{.Name}}'],
    ['secret', 'ls', '--format', '{{.Name}}'],
    ['network', 'ls', '--format', '{{.Name}}'],
  ];
  const names = await Promise.all(lists.map(async (args) => (await execa('docker', args, { reject: false })).stdout.split('\n')));
  return names.flat().filter((name) => name.includes(marker));
}

/** Ends any run still going (Ctrl-C, a failed claim): SIGTERM to its group, which tears down; SIGKILL after 60 s. */
async function stopRuns(runs: Run[]): Promise<void> {
  const going = runs.filter((run) => run.process.exitCode === null && run.process.signalCode === null);
  for (const run of going) process.kill(-run.process.pid!, 'SIGTERM');
  const timer = setTimeout(() => {
    for (const run of going)
      if (run.process.exitCode === null && run.process.signalCode === null) process.kill(-run.process.pid!, 'SIGKILL');
  }, 60_000);
  await Promise.all(going.map((run) => run.process));
  clearTimeout(timer);
}

/** Removes whatever of the demo's apps is still on the swarm (after a failed claim): stacks first, then what they held. */
async function scrub(world: World): Promise<void> {
  const marker = world.base.replaceAll('.', '_');
  const named = async (args: string[]): Promise<string[]> =>
    (await execa('docker', args, { reject: false })).stdout.split('\n').filter((name) => name.includes(marker));
  for (const stack of await named(['stack', 'ls', '--format', '{{.Name}}']))
    await execa('docker', ['stack', 'rm', stack], { reject: false });
  for (let i = 0; i < 120 && (await named(['ps', '-a', '--format', '{{.Names}}'])).length > 0; i++)
    await new Promise((r) => setTimeout(r, 500));
  for (const [kind, list] of [
    ['volume', ['volume', 'ls', '--format', '{{.Name}}']],
    ['secret', ['secret', 'ls', '--format', '{{.Name}}']],
    ['network', ['network', 'ls', '--format', '{{.Name}}']],
  ] as const) {
    for (const name of await named([...list])) await execa('docker', [kind, 'rm', name], { reject: false });
  }
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => (line ? `    ${line}` : line))
    .join('\n');
}
