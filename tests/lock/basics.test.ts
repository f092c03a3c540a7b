// The app lock's kernel guarantees (the Python suite's cases 1-4) and what the library reports
// about it: the lock dies with its holder, a probe tells held from free, children never inherit
// it, a second run of the same domain waits for the first, and /proc/locks names the holder.
import { closeSync, readdirSync, readlinkSync, statSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { acquireAppLock, probeLock } from '../../lib/lock.js';
import { lockHolders, lockPath } from '../../lib/lockfiles.js';
import { LOCK_EX, LOCK_NB, flock, openLockFile } from '../../lib/native.js';
import { flockCanTake, waitersOf } from '../support/kernel-locks.js';
import { eventually, isGone, startHelper, useHelpers } from '../support/processes.js';

const { lockDir } = useHelpers();
const DOMAIN = 'lock-a1b2c3.ci.example';

describe('the app lock', () => {
  it('is released by the kernel when its holder is SIGKILLed', async () => {
    lockDir();
    const holder = startHelper('hold-lock.mjs', [DOMAIN]);
    await holder.waitFor('HELD');
    expect(probeLock(DOMAIN)).toBe('held');
    holder.child.kill('SIGKILL');
    await holder.exited;
    expect(probeLock(DOMAIN)).toBe('free');
    expect(flockCanTake(lockPath(DOMAIN))).toBe(true);
  });

  it('answers a LOCK_NB probe with busy while held and granted once free', async () => {
    lockDir();
    expect(probeLock(DOMAIN)).toBe('absent'); // a probe never creates the lockfile
    const holder = startHelper('hold-lock.mjs', [DOMAIN]);
    await holder.waitFor('HELD');
    const fd = openLockFile(lockPath(DOMAIN), false);
    expect(flock(fd, LOCK_EX | LOCK_NB)).toBe(false);
    expect(probeLock(DOMAIN)).toBe('held');
    holder.child.kill('SIGKILL');
    await holder.exited;
    expect(flock(fd, LOCK_EX | LOCK_NB)).toBe(true);
    expect(probeLock(DOMAIN)).toBe('held'); // now by us
    closeSync(fd);
    expect(probeLock(DOMAIN)).toBe('free');
  });

  it('is not inherited by the holder’s children: the lock goes with the holder while its child lives on', async () => {
    lockDir();
    const holder = startHelper('hold-lock.mjs', [DOMAIN, '--spawn-child']);
    await holder.waitFor('HELD');
    const childPid = Number((await holder.waitFor(/^CHILD \d+/)).split(' ')[1]);
    const path = lockPath(DOMAIN);
    const childFds = readdirSync(`/proc/${childPid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${childPid}/fd/${fd}`);
      } catch {
        return '';
      }
    });
    expect(childFds).not.toContain(path);

    holder.child.kill('SIGKILL'); // the holder only: its child is left running
    await holder.exited;
    expect(isGone(childPid)).toBe(false);
    expect(probeLock(DOMAIN)).toBe('free');
  });

  it('makes a second run of the same domain wait until the first one exits', async () => {
    lockDir();
    const first = startHelper('hold-lock.mjs', [DOMAIN]);
    await first.waitFor('HELD');
    const second = startHelper('hold-lock.mjs', [DOMAIN]);
    await second.waitFor('another run of'); // logged once it has waited past the grace
    expect(waitersOf(second.pid, lockPath(DOMAIN))).toHaveLength(1);
    expect(second.lines.some((line) => line.startsWith('HELD'))).toBe(false);

    const killedAt = Date.now();
    first.child.kill('SIGKILL');
    const held = await second.waitFor('HELD');
    expect(Number(/at=(\d+)/.exec(held)![1])).toBeGreaterThanOrEqual(killedAt);
    expect(probeLock(DOMAIN)).toBe('held');
  });

  it('logs the wait once, naming the holder pid, and only past the grace', async () => {
    lockDir();
    const holder = startHelper('hold-lock.mjs', [DOMAIN, '--exit-after', '700']);
    await holder.waitFor('HELD');
    const lines: string[] = [];
    const t0 = Date.now();
    const lock = await acquireAppLock(DOMAIN, { log: (line) => lines.push(line) });
    expect(Date.now() - t0).toBeGreaterThan(300);
    expect(lines).toEqual([expect.stringContaining(`another run of ${DOMAIN} is in flight — waiting (held by pid ${holder.pid}`)]);
    expect(lock.path).toBe(lockPath(DOMAIN));

    // A lock that is free on arrival logs nothing.
    const quiet: string[] = [];
    await acquireAppLock('quiet-a1b2c3.ci.example', { log: (line) => quiet.push(line) });
    expect(quiet).toEqual([]);
  });

  it('stamps the lockfile’s mtime at acquisition (the lock’s age)', async () => {
    lockDir();
    const before = Date.now();
    const lock = await acquireAppLock('age-a1b2c3.ci.example');
    expect(statSync(lock.path).mtimeMs).toBeGreaterThanOrEqual(before - 1000);
  });

  it('names the lockfile after the domain in the lock dir read at call time', () => {
    const dir = lockDir();
    expect(lockPath('ab-123456.ci.example')).toBe(`${dir}/cc-ci-app-ab-123456.ci.example.lock`);
    process.env.CCCI_APP_LOCK_DIR = '/elsewhere';
    expect(lockPath('ab-123456.ci.example')).toBe('/elsewhere/cc-ci-app-ab-123456.ci.example.lock');
  });

  it('lists the holder pid and command of every held lockfile from /proc/locks', async () => {
    lockDir();
    const holder = startHelper('hold-lock.mjs', [DOMAIN]);
    await holder.waitFor('HELD');
    closeSync(openLockFile(lockPath('free-a1b2c3.ci.example'), true)); // exists, not held
    const holders = await eventually(() => lockHolders().length > 0 && lockHolders(), 5000, 'a holder');
    expect(holders).toEqual([
      { domain: DOMAIN, path: lockPath(DOMAIN), pid: holder.pid, command: expect.stringContaining('hold-lock.mjs') },
    ]);
  });
});
