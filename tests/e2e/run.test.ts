// `cc-ci run` end to end on the real swarm, with the test-only abra on PATH. Each test gets a
// world of its own (temp HOME, lock dir, runs dir, base domain) and leaves nothing behind.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

import type { Timings } from '../../runner/host/timings.js';
import { CLI, ROOT, startCli, type Helper } from '../support/processes.js';
import { appContainer, customSleep, domainOf, envFile, requireSwarm, useSwarmWorld, type World } from '../support/swarm.js';

const ready = requireSwarm();
const newWorld = useSwarmWorld(['ccci-demo', 'ccci-other']);
const RUN_MS = 240_000;

function run(world: World, id: string, env: NodeJS.ProcessEnv = {}): Helper {
  const { CCCI_TEST_CUSTOM_SLEEP: sleep, ...rest } = env;
  const recipe = env.RECIPE ?? 'ccci-demo';
  return startCli(['run'], {
    env: { ...world.env, RECIPE: 'ccci-demo', CCCI_RUN_ID: id, ...rest, ...(sleep ? customSleep(world, id, recipe, sleep) : {}) },
  });
}

function results(
  world: World,
  id: string,
): {
  exitCode: number;
  stages: { name: string; verdict: string }[];
  deploys: number;
  teardown: string;
  startedAt: string;
  finishedAt: string;
  timings: Timings;
} {
  return JSON.parse(readFileSync(join(world.runs, id, 'results.json'), 'utf8'));
}

/** True when nobody holds the domain's app lock (flock(1) as an outside observer). */
function lockFree(world: World, domain: string): boolean {
  const path = join(world.locks, `cc-ci-app-${domain}.lock`);
  if (!existsSync(path)) return true;
  try {
    execFileSync('flock', ['-n', path, 'true']);
    return true;
  } catch {
    return false;
  }
}

async function assertNothingLeft(world: World, domain: string): Promise<void> {
  const stack = domain.replaceAll('.', '_');
  expect((await world.leftovers()).filter((name) => name.startsWith(stack))).toEqual([]);
  expect(existsSync(envFile(world, domain))).toBe(false);
  expect(lockFree(world, domain)).toBe(true);
}

/** Kills a run the hard way: its whole process group, as a crashed CI step would leave it. */
async function crash(helper: Helper): Promise<void> {
  process.kill(-helper.pid, 'SIGKILL');
  await helper.exited;
}

async function waitForContainer(domain: string, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const container = await appContainer(domain);
    if (container) return container;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no running container for ${domain} within ${timeoutMs} ms`);
}

describe.skipIf(!ready)('cc-ci run on a real swarm', () => {
  it('runs all five stages green from cold, every abra call inside the per-run ABRA_DIR, and leaves nothing', {
    timeout: RUN_MS,
  }, async () => {
    const world = newWorld();
    const domain = domainOf(world, 'ccci-demo');
    const abraLog = join(world.runs, 'abra-calls.jsonl');
    const green = run(world, 'cold', { CCCI_TEST_ABRA_LOG: abraLog });
    expect(await green.exited, green.output()).toEqual({ code: 0, signal: null });

    const outcome = results(world, 'cold');
    expect(outcome.stages.map((s) => `${s.name}:${s.verdict}`)).toEqual([
      'install:pass',
      'upgrade:pass',
      'backup:pass',
      'restore:pass',
      'custom:pass',
    ]);
    expect(outcome).toMatchObject({ exitCode: 0, deploys: 1, teardown: 'clean' });

    const calls = readFileSync(abraLog, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { argv: string[]; ABRA_DIR: string | null });
    expect(calls[0]!.argv.slice(0, 2)).toEqual(['recipe', 'fetch']);
    for (const call of calls) expect(call.ABRA_DIR, call.argv.join(' ')).toBe(join(world.runs, 'cold', 'abra'));
    expect(existsSync(join(world.home, '.abra', 'recipes'))).toBe(false); // the canonical dir kept no recipe tree

    // Where the time went (docs/operations.md#timings): each phase a span, and abra's and docker's
    // time counted outside cc-ci's, so its own share is a small part of the wall time.
    const { timings } = outcome;
    const stack = domain.replaceAll('.', '_');
    const spans = timings.spans.map((span) => span.name);
    for (const name of [
      ...['start', 'fetch', 'janitor', 'deploy', `lock ${domain}`, `abra app deploy ${domain}`, `abra app deploy ${domain} 0.1.0+1.0`],
      ...['stage install', 'stage upgrade', 'stage custom', `wait converged ${stack}`, `health https://${domain}/`, 'test http.sh'],
      ...[`teardown ${domain}`, `abra app undeploy ${domain}`, `wait networks ${stack}`, 'results'],
    ])
      expect(spans).toContain(name);
    expect(timings.externalMs).toBeLessThanOrEqual(timings.wallMs);
    expect(timings.overheadShare).toBeGreaterThan(0);
    expect(timings.overheadShare).toBeLessThan(0.5);
    expect(green.output()).toMatch(
      /^ {2}time: start [0-9.]+ s, fetch .*, teardown [0-9.]+ s, results .*cc-ci's own [0-9.]+ s \([0-9.]+% of [0-9.]+ s\)/m,
    );
    await assertNothingLeft(world, domain);
  });

  it('serialises two runs of one domain: the second visibly waits, then both pass', { timeout: RUN_MS }, async () => {
    const world = newWorld();
    const domain = domainOf(world, 'ccci-demo');
    const first = run(world, 'first', { STAGES: 'install,custom', CCCI_TEST_CUSTOM_SLEEP: '4' });
    await first.waitFor('app lock held', 60_000);
    const second = run(world, 'second', { STAGES: 'install,custom' });
    await second.waitFor(`another run of ${domain} is in flight — waiting`, 30_000);
    expect(await first.exited).toEqual({ code: 0, signal: null });
    expect(await second.exited, second.output()).toEqual({ code: 0, signal: null });
    // The second got the lock only once the first had finished: its whole teardown included.
    const lockLine = readFileSync(join(world.runs, 'second', 'run.log'), 'utf8')
      .split('\n')
      .find((l) => l.includes('app lock held'))!;
    expect(Date.parse(lockLine.split(' ')[0]!)).toBeGreaterThanOrEqual(Date.parse(results(world, 'first').finishedAt));
    await assertNothingLeft(world, domain);
  });

  it('runs two different recipes at the same time, overlapping, both green', { timeout: RUN_MS }, async () => {
    const world = newWorld();
    const one = run(world, 'one', { STAGES: 'install,custom', CCCI_TEST_CUSTOM_SLEEP: '3' });
    const two = run(world, 'two', { RECIPE: 'ccci-other', STAGES: 'install,custom', CCCI_TEST_CUSTOM_SLEEP: '3' });
    expect(await one.exited, one.output()).toEqual({ code: 0, signal: null });
    expect(await two.exited, two.output()).toEqual({ code: 0, signal: null });
    const [a, b] = [results(world, 'one'), results(world, 'two')];
    expect(Date.parse(a.startedAt)).toBeLessThan(Date.parse(b.finishedAt));
    expect(Date.parse(b.startedAt)).toBeLessThan(Date.parse(a.finishedAt));
    await assertNothingLeft(world, domainOf(world, 'ccci-demo'));
    await assertNothingLeft(world, domainOf(world, 'ccci-other'));
  });

  it('removes what a run SIGKILLed mid-deploy left before the waiting run of its domain deploys', { timeout: RUN_MS }, async () => {
    const world = newWorld();
    const domain = domainOf(world, 'ccci-demo');
    const doomed = run(world, 'doomed', { STAGES: 'install' });
    const container = await waitForContainer(domain);
    await execa('docker', ['exec', container, 'sh', '-c', 'echo from-the-dead-run > /var/www/dead-run-marker']);
    const waiting = run(world, 'waiting', { STAGES: 'install,custom', CCCI_TEST_CUSTOM_SLEEP: '5' });
    await waiting.waitFor('is in flight — waiting', 30_000);
    await crash(doomed);

    await waiting.waitFor('leftovers of a run that died while we waited', 60_000);
    await waiting.waitFor(`deployed ${domain}`, 120_000);
    const fresh = await waitForContainer(domain);
    const probe = await execa('docker', ['exec', fresh, 'ls', '/var/www/dead-run-marker'], { reject: false });
    expect(probe.exitCode, "the new app must not see the dead run's volume").not.toBe(0);
    expect(await waiting.exited, waiting.output()).toEqual({ code: 0, signal: null });
    await assertNothingLeft(world, domain);
  });

  it("reaps a SIGKILLed run's orphan at the next run's start, leaving a live concurrent run alone", { timeout: RUN_MS }, async () => {
    const world = newWorld();
    const orphan = domainOf(world, 'ccci-demo');
    const liveDomain = domainOf(world, 'ccci-other');
    const live = run(world, 'live', { RECIPE: 'ccci-other', STAGES: 'install,custom', CCCI_TEST_CUSTOM_SLEEP: '25' });
    const doomed = run(world, 'doomed', { STAGES: 'install' });
    await waitForContainer(orphan);
    await crash(doomed);
    await live.waitFor('custom: pause.sh', 120_000);

    const next = run(world, 'next', { PR: '7', STAGES: 'install' });
    await next.waitFor('== janitor: reaped', 120_000);
    // Right after the sweep, while the live run is still in its custom stage: its app is untouched.
    expect(await appContainer(liveDomain)).not.toBeNull();
    expect(await next.exited, next.output()).toEqual({ code: 0, signal: null });
    expect(next.output()).toContain(`reaped [${orphan}]`);
    expect(next.output()).toMatch(new RegExp(`live \\[[^\\]]*${liveDomain.replaceAll('.', '\\.')}`));
    await assertNothingLeft(world, orphan);
    expect(await live.exited, live.output()).toEqual({ code: 0, signal: null });
    await assertNothingLeft(world, liveDomain);
  });

  it('tears down and exits 143 when its cc-ci step wrapper is sent SIGTERM mid-stage', { timeout: RUN_MS }, async () => {
    const world = newWorld();
    const domain = domainOf(world, 'ccci-demo');
    const step = startCli(['step', '--', process.execPath, CLI, 'run'], {
      env: {
        ...world.env,
        RECIPE: 'ccci-demo',
        CCCI_RUN_ID: 'cancelled',
        STAGES: 'install,custom',
        ...customSleep(world, 'cancelled', 'ccci-demo', 120),
      },
    });
    await step.waitFor('custom: pause.sh', 120_000);
    step.child.kill('SIGTERM');
    expect(await step.exited, step.output()).toEqual({ code: 143, signal: null });
    expect(step.output()).toContain('SIGTERM received');
    expect(results(world, 'cancelled')).toMatchObject({ exitCode: 143, teardown: 'clean' });
    await assertNothingLeft(world, domain);
  });

  it('finishes its own teardown, slower than the unwind grace, when SIGTERM lands during it, then exits 143', {
    timeout: RUN_MS,
  }, async () => {
    const world = newWorld();
    const domain = domainOf(world, 'ccci-demo');
    // An abra whose undeploy takes 8 s; with a 24 s teardown budget the funnel waits 6 s for main.
    const shims = join(world.runs, 'slow-abra');
    mkdirSync(shims);
    writeFileSync(
      join(shims, 'abra'),
      `#!/bin/sh\ncase "$*" in *"app undeploy"*) sleep 8;; esac\nexec '${join(ROOT, 'tests', 'fixtures', 'abra', 'abra')}' "$@"\n`,
      { mode: 0o755 },
    );
    const run = startCli(['run'], {
      env: {
        ...world.env,
        PATH: `${shims}:${world.env.PATH}`,
        RECIPE: 'ccci-demo',
        CCCI_RUN_ID: 'late-term',
        STAGES: 'install',
        CCCI_TEARDOWN_BUDGET_SECONDS: '24',
      },
    });
    await run.waitFor(`$ abra app undeploy ${domain}`, 120_000);
    run.child.kill('SIGTERM');
    expect(await run.exited, run.output()).toEqual({ code: 143, signal: null });
    expect(run.output()).toContain('run did not stop within 6000 ms of the abort');
    expect(results(world, 'late-term'), run.output()).toMatchObject({ exitCode: 143, teardown: 'clean' });
    await assertNothingLeft(world, domain);
  });

  it('tears down and exits 142 at a 20-second hard deadline on a slow stage', { timeout: RUN_MS }, async () => {
    const world = newWorld();
    const domain = domainOf(world, 'ccci-demo');
    const slow = run(world, 'slow', { STAGES: 'install,custom', CCCI_TEST_CUSTOM_SLEEP: '300', CCCI_DEADLINE_SECONDS: '20' });
    expect(await slow.exited, slow.output()).toEqual({ code: 142, signal: null });
    expect(slow.output()).toContain('hard deadline — tearing down');
    expect(results(world, 'slow')).toMatchObject({ exitCode: 142, teardown: 'clean' });
    await assertNothingLeft(world, domain);
  });
});
