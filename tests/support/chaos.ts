// What the chaos suites share: reading a run's timestamped log, finding a `cc-ci step` wrapper's
// run, watching a process group go, waiting for a condition, and a lockfile's state as flock(1)
// sees it from outside, killing a run, and what a chaos run must have covered.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { expect } from 'vitest';

import { isGone, type Helper } from './processes.js';
import type { World } from './swarm.js';

/** The run's own log, `<runs>/<id>/run.log`: `<ISO time> <line>` per line. */
export function runLog(world: World, id: string): { at: number; line: string }[] {
  const path = join(world.runs, id, 'run.log');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((raw) => ({ at: Date.parse(raw.slice(0, raw.indexOf(' '))), line: raw.slice(raw.indexOf(' ') + 1) }));
}

/** The direct child of `pid` (the run a `cc-ci step` wrapper started), or null. */
export function childOf(pid: number): number | null {
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return children ? Number(children.split(/\s+/)[0]) : null;
  } catch {
    return null;
  }
}

/** Whether any process of the group `pgid` is alive. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every 5 ms until it gives a value; throws, naming `what`, after `timeoutMs`. */
export async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => T | null | undefined | false | Promise<T | null | undefined | false>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

// flock(1) on a descriptor the shell opened without O_CREAT: exit 0 free, 200 held, 3 no such file.
const SH_FLOCK = 'flock -n -x -E 200 9 9<"$0" 2>/dev/null; s=$?; [ $s = 0 ] || [ $s = 200 ] || exit 3; exit $s';

/**
 * A lockfile as flock(1) sees it from outside: 'absent', 'free' or 'held'. The file is opened
 * by the shell without O_CREAT (`flock <path>` would create it, racing a janitor's unlink).
 */
export function lockState(path: string): 'absent' | 'free' | 'held' {
  const probe = spawnSync('sh', ['-c', SH_FLOCK, path]);
  if (probe.status === 3) return 'absent';
  if (probe.status === 200) return 'held';
  if (probe.status === 0) return 'free';
  throw new Error(`flock(1) on ${path}: exit ${probe.status} ${String(probe.stderr)}`);
}

/**
 * SIGKILLs a run: its whole process group (`group`: a crashed runner, no teardown at all), or only
 * the `cc-ci step` wrapper `helper` it runs under (`step-wrapper`: the run's parent-death signal
 * makes it tear down by itself). Resolves once the run and its group are gone.
 */
export async function killRun(how: 'group' | 'step-wrapper', helper: Helper, runPid: number, id: string): Promise<void> {
  if (how === 'group') {
    process.kill(-runPid, 'SIGKILL');
    await helper.exited;
    await until(`run ${id}'s process group to go`, 10_000, () => !groupAlive(runPid));
    return;
  }
  process.kill(helper.pid, 'SIGKILL');
  await helper.exited;
  await until(`run ${id} (pid ${runPid}) to finish after its wrapper died`, 240_000, () => isGone(runPid));
  await until(`run ${id}'s process group to go`, 30_000, () => !groupAlive(runPid));
}

/** SIGKILLs each process group still there (runs whose wrapper a test killed): nothing outlives the test. */
export function killGroups(pgids: Iterable<number>): void {
  for (const pgid of pgids) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** `<phase> <count>, …`: how many kills landed in each of `phases`, of one way of killing when `how` is given. */
export function countByPhase(kills: readonly { landed: string; how: string }[], phases: readonly string[], how?: string): string {
  return phases
    .map((phase) => `${phase} ${kills.filter((k) => k.landed === phase && (how === undefined || k.how === how)).length}`)
    .join(', ');
}

/** The chaos run's coverage: a kill landed in every one of `phases`, and at least `wrapperKills` through the step wrapper. */
export function expectEveryPhaseHit(
  kills: readonly { landed: string; how: string }[],
  phases: readonly string[],
  wrapperKills: number,
): void {
  for (const phase of phases)
    expect(
      kills.some((k) => k.landed === phase),
      `no kill landed ${phase}`,
    ).toBe(true);
  expect(kills.filter((k) => k.how === 'step-wrapper').length).toBeGreaterThanOrEqual(wrapperKills);
}
