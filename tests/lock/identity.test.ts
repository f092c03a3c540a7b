// A lock is only worth its inode: a run that wins the lock of a lockfile a janitor has meanwhile
// unlinked holds nothing anyone else can see. acquireAppLock checks identity after every grant
// and starts over on the live path.
import { closeSync, existsSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { acquireAppLock, probeLock } from '../../lib/lock.js';
import { lockPath } from '../../lib/lockfiles.js';
import { LOCK_EX, LOCK_NB, flock, identity, openLockFile, pathIdentity } from '../../lib/native.js';
import { waitersOf } from '../support/kernel-locks.js';
import { eventually, startHelper, useHelpers } from '../support/processes.js';

const { lockDir } = useHelpers();
const DOMAIN = 'inode-a1b2c3.ci.example';

describe('acquireAppLock and the lockfile’s identity', () => {
  it('re-acquires on the live path when the holder unlinks the inode it was waiting on', async () => {
    lockDir();
    const path = lockPath(DOMAIN);
    const reaper = startHelper('hold-and-unlink.mjs', [DOMAIN]);
    await reaper.waitFor('HELD');
    const deadInode = pathIdentity(path);

    const acquiring = acquireAppLock(DOMAIN, { log: () => {} });
    await eventually(() => waitersOf(process.pid, path).length === 1, 5000, 'our wait on the old inode');

    reaper.child.kill('SIGUSR2'); // it unlinks the lockfile it holds, as a janitor reaping the app does
    await reaper.waitFor('UNLINKED');
    expect(existsSync(path)).toBe(false);
    // A new run creates the lockfile afresh and holds it before the old inode is released.
    const next = startHelper('hold-lock.mjs', [DOMAIN]);
    await next.waitFor('HELD');
    const liveInode = pathIdentity(path);
    expect(liveInode.ino).not.toBe(deadInode.ino);

    reaper.child.kill('SIGKILL'); // the dead inode's lock is released: our wait is granted on it...
    await reaper.exited;
    // ...and, finding it unlinked, we queue again on the live inode instead of returning.
    await eventually(() => waitersOf(process.pid, path).length === 1, 5000, 'our wait on the live inode');

    next.child.kill('SIGKILL');
    const lock = await acquiring;
    expect(identity(lock.fd)).toEqual(liveInode);
    expect(pathIdentity(path)).toEqual(liveInode);
    const probe = openLockFile(path, false);
    expect(flock(probe, LOCK_EX | LOCK_NB)).toBe(false); // held, and on the inode everyone opens
    closeSync(probe);
  });

  it('returns the lock it already holds to a second acquire of the same domain in the process', async () => {
    lockDir();
    const first = await acquireAppLock(DOMAIN);
    expect(pathIdentity(lockPath(DOMAIN))).toEqual(identity(first.fd));
    expect(await acquireAppLock(DOMAIN)).toBe(first); // not a wait on our own lock
  });

  it('shares one wait between concurrent acquires of the same domain in one process', async () => {
    lockDir();
    const holder = startHelper('hold-lock.mjs', [DOMAIN]);
    await holder.waitFor('HELD');
    const a = acquireAppLock(DOMAIN, { log: () => {} });
    const controller = new AbortController();
    const b = acquireAppLock(DOMAIN, { log: () => {}, signal: controller.signal });
    const c = acquireAppLock(DOMAIN, { log: () => {} });
    await eventually(() => waitersOf(process.pid).length === 1, 5000, 'one wait queued');
    controller.abort(new Error('b gives up'));
    await expect(b).rejects.toThrow('b gives up'); // only b: a's wait goes on
    expect(waitersOf(process.pid)).toHaveLength(1);
    holder.child.kill('SIGKILL');
    const [lockA, lockC] = await Promise.all([a, c]);
    expect(lockC).toBe(lockA);
    expect(probeLock(DOMAIN)).toBe('held');
  });

  it('gives up only the waiting under an aborted signal: a free lock is still taken, a held one is not', async () => {
    lockDir();
    const lock = await acquireAppLock('free-a1b2c3.ci.example', { signal: AbortSignal.abort() });
    expect(probeLock('free-a1b2c3.ci.example')).toBe('held');
    expect(lock.domain).toBe('free-a1b2c3.ci.example');

    const holder = startHelper('hold-lock.mjs', [DOMAIN]);
    await holder.waitFor('HELD');
    await expect(acquireAppLock(DOMAIN, { signal: AbortSignal.abort('busy') })).rejects.toBe('busy');
    expect(waitersOf(process.pid)).toEqual([]);
  });
});
