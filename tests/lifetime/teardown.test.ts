// The teardown funnel: every way a guarded run ends (signal, deadline, return, throw, stall) aborts
// the run, runs each teardown step exactly once, last registered first, and exits with the code
// that says which way it was. Teardown itself is bounded.
import { describe, expect, it } from 'vitest';

import { probeLock } from '../../lib/lock.js';
import { eventually, isGone, startHelper, useHelpers, type Helper } from '../support/processes.js';

const { lockDir } = useHelpers();
const DOMAIN = 'tear-a1b2c3.ci.example';

function teardownLines(helper: Helper): string[] {
  return helper.lines.filter((line) => line.startsWith('TEARDOWN '));
}

describe('teardown funnel', () => {
  it('SIGTERM aborts the run, runs each step once in reverse order (a failing step is logged), exits 143, frees the lock', async () => {
    lockDir();
    const run = startHelper('lifetime-guarded.mjs', [DOMAIN]);
    await run.waitFor(/^READY /);
    expect(probeLock(DOMAIN)).toBe('held');

    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 143, signal: null });
    expect(run.lines).toContain('== SIGTERM received — tearing down ==');
    expect(teardownLines(run)).toEqual(['TEARDOWN 3', 'TEARDOWN 1']);
    // The log and the error go to stderr, the TEARDOWN markers to stdout: only within stderr is the order kept.
    const stderr = run.lines.filter((line) => !/^(READY|TEARDOWN|EXIT) /.test(line)).join('\n');
    expect(stderr).toMatch(/== a teardown step failed — continuing with the next ==\nError: teardown boom/);
    expect(probeLock(DOMAIN)).toBe('free');
  });

  it('the hard deadline (2 s) tears down and exits 142 with the lock released', async () => {
    lockDir();
    const run = startHelper('lifetime-guarded.mjs', [DOMAIN, '--deadline', '2']);
    await run.waitFor(/^READY /);
    expect(probeLock(DOMAIN)).toBe('held');
    const t0 = Date.now();

    expect(await run.exited).toEqual({ code: 142, signal: null });
    expect(Date.now() - t0).toBeGreaterThan(1_000);
    expect(run.lines).toContain('== run exceeded 2-second hard deadline — tearing down ==');
    expect(teardownLines(run)).toEqual(['TEARDOWN 3', 'TEARDOWN 1']);
    expect(probeLock(DOMAIN)).toBe('free');
  });

  it("the deadline still tears down when execa's exit hook (signal-exit) listens for SIGALRM too", async () => {
    lockDir();
    const run = startHelper('lifetime-guarded.mjs', [DOMAIN, '--deadline', '2', '--child', '--execa-exit-hook']);
    await run.waitFor(/^READY /);

    expect(await run.exited).toEqual({ code: 142, signal: null });
    expect(teardownLines(run)).toEqual(['TEARDOWN 3', 'TEARDOWN 1']);
    expect(probeLock(DOMAIN)).toBe('free');
  });

  it('signals during a slow teardown are logged and ignored: it finishes, and the first signal decides the code', async () => {
    const run = startHelper('lifetime-guarded.mjs', ['--slow-teardown', '800']);
    await run.waitFor(/^READY /);
    run.child.kill('SIGTERM');
    await run.waitFor('TEARDOWN 3');
    run.child.kill('SIGTERM');
    run.child.kill('SIGINT');
    await run.waitFor('== SIGINT received during teardown — ignored ==');

    expect(await run.exited).toEqual({ code: 143, signal: null });
    expect(run.lines).toContain('== SIGTERM received during teardown — ignored ==');
    expect(teardownLines(run)).toEqual(['TEARDOWN 3', 'TEARDOWN 3 done', 'TEARDOWN 1']);
  });

  it('main throwing tears down once and exits 1', async () => {
    lockDir();
    const run = startHelper('lifetime-guarded.mjs', [DOMAIN, '--throw']);
    expect(await run.exited).toEqual({ code: 1, signal: null });
    expect(run.output()).toContain('Error: main boom');
    expect(run.lines).toContain('== run threw — tearing down ==');
    expect(teardownLines(run)).toEqual(['TEARDOWN 3', 'TEARDOWN 1']);
    expect(probeLock(DOMAIN)).toBe('free');
  });

  it("main's return value is the exit code, after the teardown", async () => {
    const run = startHelper('lifetime-guarded.mjs', ['--exit', '7']);
    expect(await run.exited).toEqual({ code: 7, signal: null });
    expect(teardownLines(run)).toEqual(['TEARDOWN 3', 'TEARDOWN 1']);
  });

  it("SIGTERM terminates the run's in-flight child process (execa cancelSignal)", async () => {
    const run = startHelper('lifetime-guarded.mjs', ['--child']);
    const sleeper = Number((await run.waitFor(/^CHILD \d+/)).split(' ')[1]);
    await run.waitFor(/^READY /);
    expect(isGone(sleeper)).toBe(false);

    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 143, signal: null });
    await eventually(() => isGone(sleeper), 5_000, 'the run’s child to be terminated');
  });

  it('a guarded signal ends the process even when nobody called run()', async () => {
    const run = startHelper('lifetime-guarded.mjs', ['--no-run']);
    await run.waitFor(/^READY /);
    run.child.kill('SIGHUP');
    expect(await run.exited).toEqual({ code: 129, signal: null });
    expect(run.lines).toContain('== SIGHUP received — tearing down ==');
    expect(teardownLines(run)).toEqual(['TEARDOWN 3', 'TEARDOWN 1']);
  });

  it('without run(), an event loop that runs dry still tears down and keeps process.exitCode', async () => {
    const run = startHelper('lifetime-guarded.mjs', ['--no-run', '--drain']);
    expect(await run.exited).toEqual({ code: 3, signal: null });
    expect(teardownLines(run)).toEqual(['TEARDOWN 3', 'TEARDOWN 1']);
  });

  it('a main that ignores the abort gets a bounded grace to unwind, then the teardown runs anyway', async () => {
    const run = startHelper('lifetime-guarded.mjs', ['--ignore-abort', '--budget', '2']);
    await run.waitFor(/^READY /);
    run.child.kill('SIGINT');
    expect(await run.exited).toEqual({ code: 130, signal: null });
    expect(run.lines).toContain('== run did not stop within 500 ms of the abort — tearing down anyway ==');
    expect(teardownLines(run)).toEqual(['TEARDOWN 3', 'TEARDOWN 1']);
  });

  it('a main stalled on a promise nothing can settle tears down and exits 1, not 0', async () => {
    const run = startHelper('lifetime-guarded.mjs', ['--stall']);
    expect(await run.exited).toEqual({ code: 1, signal: null });
    expect(run.lines).toContain('== run stalled: main awaits a promise nothing can settle — tearing down ==');
    expect(teardownLines(run)).toEqual(['TEARDOWN 3', 'TEARDOWN 1']);
  });

  it('a teardown step that hangs is cut off at the teardown budget, keeping the exit code', async () => {
    const run = startHelper('lifetime-guarded.mjs', ['--hang-teardown', '--budget', '1']);
    await run.waitFor(/^READY /);
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 143, signal: null });
    expect(run.lines).toContain('== teardown exceeded its 1-second budget — exiting 143 without finishing it ==');
    expect(teardownLines(run)).toEqual(['TEARDOWN 3']);
  });

  it('a teardown that wedges the event loop is ended by the kernel alarm (SIGALRM, default action)', async () => {
    const run = startHelper('lifetime-guarded.mjs', ['--wedge-teardown', '--budget', '1']);
    await run.waitFor(/^READY /);
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: null, signal: 'SIGALRM' });
    expect(teardownLines(run)).toEqual(['TEARDOWN 3']);
  });

  it('a log that throws (disk full) cannot derail the funnel: the line goes to stderr instead', async () => {
    const run = startHelper('lifetime-guarded.mjs', ['--broken-log']);
    await run.waitFor(/^READY /);
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 143, signal: null });
    expect(run.lines).toContain('== SIGTERM received — tearing down ==');
    expect(teardownLines(run)).toEqual(['TEARDOWN 3', 'TEARDOWN 1']);
  });

  it('a bad CCCI_DEADLINE_SECONDS is an InputError naming the variable; a second install is refused', async () => {
    const bad = startHelper('lifetime-guarded.mjs', [], { env: { CCCI_DEADLINE_SECONDS: '1h' } });
    const twice = startHelper('lifetime-guarded.mjs', ['--install-twice']);
    expect(await bad.exited).toEqual({ code: 2, signal: null });
    expect(bad.lines[0]).toBe(
      'ERROR InputError ERR_CCCI_INPUT CCCI_DEADLINE_SECONDS must be a whole number of seconds from 1 to 604800, got "1h"',
    );
    expect(await twice.exited).toEqual({ code: 2, signal: null });
    expect(twice.lines[0]).toMatch(/^ERROR CcciError ERR_CCCI_LIFETIME_INSTALLED .*already installed/);
  });
});
