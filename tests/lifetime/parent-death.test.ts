// Parent death: a guarded run learns that its parent is gone, from the kernel (PR_SET_PDEATHSIG),
// or refuses to start when the parent was already gone before the signal was armed.
import { describe, expect, it } from 'vitest';

import { probeLock } from '../../lib/lock.js';
import { eventually, isGone, startHelper, useHelpers, type Helper } from '../support/processes.js';

const { lockDir } = useHelpers();
const DOMAIN = 'pdea-a1b2c3.ci.example';

/** The pid after `label` in the first line that has it. */
async function pidAfter(helper: Helper, label: string): Promise<number> {
  const line = await helper.waitFor(new RegExp(`\\b${label} \\d+`));
  return Number(new RegExp(`\\b${label} (\\d+)`).exec(line)![1]);
}

// Output of a child whose parent was killed or has exited keeps arriving on the inherited pipes,
// so these tests poll the lines rather than wait on the (already exited) process started here.
// Likewise they poll the lock: nobody here can waitpid() the orphan, and its main thread shows as a
// zombie while its other threads (which share the lock's fd table) may still be exiting.
async function exitLine(helper: Helper): Promise<string> {
  return eventually(() => helper.lines.find((line) => line.startsWith('EXIT ')), 5_000, `an EXIT line; output:\n${helper.output()}`);
}

describe('parent death', () => {
  it('a guarded child whose parent is SIGKILLed gets SIGTERM from the kernel, tears down, exits 143 and frees its lock', async () => {
    lockDir();
    const wrapper = startHelper('lifetime-wrapper.mjs', [DOMAIN]);
    const child = await pidAfter(wrapper, 'WRAPPED');
    await wrapper.waitFor(/^READY /);
    expect(probeLock(DOMAIN)).toBe('held');

    process.kill(wrapper.pid, 'SIGKILL'); // the wrapper alone: nobody but the kernel tells the child
    expect(await exitLine(wrapper)).toBe('EXIT 143');
    await eventually(() => isGone(child), 5_000, 'the guarded child to exit');
    expect(wrapper.lines).toContain('== SIGTERM received — tearing down ==');
    expect(wrapper.lines.filter((line) => line.startsWith('TEARDOWN '))).toEqual(['TEARDOWN 3', 'TEARDOWN 1']);
    await eventually(() => probeLock(DOMAIN) === 'free', 2_000, 'the lock to be released');
  });

  it('a child whose parent died before it armed the guards refuses to run: one line, exit 1, no teardown', async () => {
    const intermediate = startHelper('lifetime-orphan.mjs', ['intermediate', 'early']);
    const child = await pidAfter(intermediate, 'CHILD');
    const reparented = await intermediate.waitFor(/^REPARENTED /);
    expect(await exitLine(intermediate)).toBe('EXIT 1');
    await eventually(() => isGone(child), 5_000, 'the orphan to exit');
    // The refusal goes to stderr, EXIT to stdout: two pipes, read in no set order. Once both have
    // ended, every line is in.
    const { stdout, stderr } = intermediate.child;
    await eventually(() => stdout!.readableEnded && stderr!.readableEnded, 5_000, 'the orphan’s output to end');

    // Adopted by init here; under a subreaper (a container's init shim) the parent change tells.
    const why = reparented.endsWith(' to 1') ? 'parent is pid 1' : 'parent changed from pid';
    const refusals = intermediate.lines.filter((line) => line.startsWith('== refusing to run: '));
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toContain(why);
    expect(intermediate.lines).not.toContain('GUARDS_OK');
    expect(intermediate.lines).not.toContain('TEARDOWN');
  });

  it('under a subreaper, a child adopted before arming refuses to run: its parent is not the one it started with', async () => {
    const subreaper = startHelper('lifetime-orphan.mjs', ['subreaper', 'early']);
    const reaper = await pidAfter(subreaper, 'SUBREAPER');
    const first = await pidAfter(subreaper, 'INTERMEDIATE');
    const child = await pidAfter(subreaper, 'CHILD');
    expect(await exitLine(subreaper)).toBe('EXIT 1');
    await eventually(() => isGone(child), 5_000, 'the orphan to exit');
    await subreaper.waitFor('== refusing to run: '); // stderr: it may arrive after stdout's EXIT

    expect(subreaper.lines).toContain(`REPARENTED from ${first} to ${reaper}`);
    expect(subreaper.lines.filter((line) => line.startsWith('== refusing to run: '))).toEqual([
      expect.stringContaining(`parent changed from pid ${first} to pid ${reaper}`),
    ]);
    expect(subreaper.lines).not.toContain('TEARDOWN');
  });

  it('under a subreaper, CCCI_EXPECTED_PPID catches an adoption that happened before the process even started watching', async () => {
    const subreaper = startHelper('lifetime-orphan.mjs', ['subreaper', 'late-expect']);
    const reaper = await pidAfter(subreaper, 'SUBREAPER');
    const first = await pidAfter(subreaper, 'INTERMEDIATE');
    expect(await exitLine(subreaper)).toBe('EXIT 1');
    await subreaper.waitFor('== refusing to run: '); // stderr: it may arrive after stdout's EXIT

    expect(subreaper.lines).toContain(`REPARENTED from ${first} to ${reaper}`);
    expect(subreaper.lines.filter((line) => line.startsWith('== refusing to run: '))).toEqual([
      expect.stringContaining(`parent is pid ${reaper}, not CCCI_EXPECTED_PPID=${first}`),
    ]);
    expect(subreaper.lines).not.toContain('TEARDOWN');
  });
});
