// The same lockfile, the same lock: util-linux flock(1) and the Python runner's fcntl.flock see
// our lock, and we see theirs. Both are real processes holding real locks.
import { describe, expect, it } from 'vitest';

import { acquireAppLock, probeLock } from '../../lib/lock.js';
import { lockHolders, lockPath } from '../../lib/lockfiles.js';
import { flockCanTake, waitersOf } from '../support/kernel-locks.js';
import { eventually, startHelper, startProcess, useHelpers, type Helper } from '../support/processes.js';

const { lockDir } = useHelpers();
const DOMAIN = 'peer-a1b2c3.ci.example';

const PYTHON_HOLDER = `
import fcntl, os, sys, time
f = open(sys.argv[1], "a")              # what the Python runner does
fcntl.flock(f, fcntl.LOCK_EX)
print("HELD", os.getpid(), flush=True)
time.sleep(300)
`;

const foreignHolders: [string, (path: string) => Helper][] = [
  ['flock(1)', (path) => startProcess('flock', ['-x', '-o', path, 'sh', '-c', 'echo HELD; exec sleep 300'])],
  ['Python fcntl.flock', (path) => startProcess('python3', ['-c', PYTHON_HOLDER, path])],
];

describe.each(foreignHolders)('a lock held by %s', (_name, start) => {
  it('probes as held, blocks acquireAppLock (naming its pid), and is ours once it goes', async () => {
    lockDir();
    const path = lockPath(DOMAIN);
    const holder = start(path);
    await holder.waitFor('HELD');
    expect(probeLock(DOMAIN)).toBe('held');
    expect(lockHolders()).toEqual([expect.objectContaining({ domain: DOMAIN, pid: holder.pid })]);

    const lines: string[] = [];
    const acquiring = acquireAppLock(DOMAIN, { log: (line) => lines.push(line) });
    await eventually(() => lines.length === 1, 5000, 'the waiting line');
    expect(lines[0]).toContain(`held by pid ${holder.pid}`);
    expect(waitersOf(process.pid, path)).toHaveLength(1);

    process.kill(-holder.pid, 'SIGKILL');
    const lock = await acquiring;
    expect(lock.path).toBe(path);
    expect(flockCanTake(path)).toBe(false);
  });
});

describe('our lock, seen by others', () => {
  it('makes `flock -n` fail while held and succeed once its holder is gone', async () => {
    lockDir();
    const holder = startHelper('hold-lock.mjs', [DOMAIN]);
    await holder.waitFor('HELD');
    expect(flockCanTake(lockPath(DOMAIN))).toBe(false);
    holder.child.kill('SIGKILL');
    await holder.exited;
    expect(flockCanTake(lockPath(DOMAIN))).toBe(true);
  });

  it('blocks Python’s non-blocking fcntl.flock', async () => {
    lockDir();
    const holder = startHelper('hold-lock.mjs', [DOMAIN]);
    await holder.waitFor('HELD');
    const probe = startProcess('python3', [
      '-c',
      `import fcntl, sys
f = open(sys.argv[1], "a")
try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("ACQUIRED")
except BlockingIOError:
    print("BLOCKED")`,
      lockPath(DOMAIN),
    ]);
    expect(await probe.waitFor(/^(ACQUIRED|BLOCKED)$/)).toBe('BLOCKED');
  });
});
