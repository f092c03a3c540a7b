// `cc-ci step -- <command>`: the CI step wrapper. It exits with the command's exact code (128+n for
// signal n), forwards cancels to the command's whole process group, and turns its own parent's
// death into a cancel.
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { probeLock } from '../../lib/lock.js';
import { CLI, HELPERS, eventually, isGone, startCli, startProcess, useHelpers } from '../support/processes.js';

const { lockDir } = useHelpers();
const DOMAIN = 'step-a1b2c3.ci.example';

// The wrapped command runs in a session of its own, out of reach of the helper cleanup's group
// kill: should a test fail midway, kill the sessions it learned about here.
const sessions = new Set<number>();
afterEach(() => {
  for (const leader of sessions) {
    try {
      process.kill(-leader, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  sessions.clear();
});

describe('cc-ci step', () => {
  it('exits 0 for a green command and keeps a red command’s code (7 stays 7)', async () => {
    const green = startCli(['step', '--', 'true']);
    const red = startCli(['step', '--', 'sh', '-c', 'exit 7']);
    expect(await green.exited).toEqual({ code: 0, signal: null });
    expect(await red.exited).toEqual({ code: 7, signal: null });
    expect(green.lines).toEqual([]); // the already-gone group is nobody's business
  });

  it('exits 137 for a command killed by SIGKILL', async () => {
    const step = startCli(['step', '--', 'sh', '-c', 'kill -KILL $$']);
    expect(await step.exited).toEqual({ code: 137, signal: null });
  });

  it('exits 127 with a clear message for a command that does not exist, 2 without a command', async () => {
    const missing = startCli(['step', '--', 'cc-ci-no-such-command']);
    const none = startCli(['step']);
    expect(await missing.exited).toEqual({ code: 127, signal: null });
    expect(missing.lines).toEqual(['cc-ci step: command not found: cc-ci-no-such-command']);
    expect(await none.exited).toEqual({ code: 2, signal: null });
  });

  it("forwards SIGTERM to the command's whole process group and exits with the command's 143", async () => {
    const step = startCli(['step', '--', process.execPath, join(HELPERS, 'step-group.mjs')]);
    const ready = await step.waitFor(/^READY /);
    const [, leader, parent, member, expected] = /pid=(\d+) ppid=(\d+) member=(\d+) expected=(\S+)/.exec(ready)!.map(Number);
    sessions.add(leader!);
    expect(parent).toBe(step.pid);
    expect(expected).toBe(step.pid);
    expect(leader).not.toBe(step.pid);

    step.child.kill('SIGTERM'); // the wrapper alone; the command runs in a session of its own
    expect(await step.exited).toEqual({ code: 143, signal: null });
    expect(step.lines).toContain('LEADER TERM');
    expect(step.lines).toContain('MEMBER EXITED SIGTERM');
    expect(isGone(leader!)).toBe(true);
    expect(isGone(member!)).toBe(true);
  });

  it('sends SIGTERM to what a green command left in its group, and still exits 0', async () => {
    const step = startCli(['step', '--', 'sh', '-c', 'sleep 300 & echo "BG $! GROUP $$"']);
    const [, leftover, group] = /^BG (\d+) GROUP (\d+)/.exec(await step.waitFor(/^BG /))!.map(Number);
    sessions.add(group!);
    expect(await step.exited).toEqual({ code: 0, signal: null });
    await eventually(() => isGone(leftover!), 5_000, 'the leftover sleep to be terminated');
  });

  it('turns the death of its own parent (the CI step shell, SIGKILLed) into a cancel of the guarded run', async () => {
    lockDir();
    // sh stands for the CI runner's step shell; `; :` keeps sh from exec-ing the wrapper.
    const shell = startProcess('sh', [
      '-c',
      '"$0" "$1" step -- "$0" "$2" "$3"; :',
      process.execPath,
      CLI,
      join(HELPERS, 'lifetime-guarded.mjs'),
      DOMAIN,
    ]);
    const ready = await shell.waitFor(/^READY /);
    const [, run, wrapper] = /pid=(\d+) ppid=(\d+)/.exec(ready)!.map(Number);
    sessions.add(run!);
    expect(probeLock(DOMAIN)).toBe('held'); // and so the run accepted CCCI_EXPECTED_PPID

    process.kill(shell.pid, 'SIGKILL');
    await eventually(() => shell.lines.includes('EXIT 143'), 5_000, `the run to exit 143; output:\n${shell.output()}`);
    expect(shell.lines).toContain(`cc-ci step: SIGTERM received — forwarding it to the command's process group ${run}`);
    expect(shell.lines.filter((line) => line.startsWith('TEARDOWN '))).toEqual(['TEARDOWN 3', 'TEARDOWN 1']);
    await eventually(() => isGone(run!) && isGone(wrapper!), 5_000, 'the run and the wrapper to exit');
    // Polled: nobody here waits for the run, and a zombie main thread is not yet a closed fd table.
    await eventually(() => probeLock(DOMAIN) === 'free', 2_000, 'the lock to be released');
  });
});
