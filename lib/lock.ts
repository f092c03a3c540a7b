// The app-domain lock. A run holds an exclusive flock(2) on `<dir>/cc-ci-app-<domain>.lock` for
// the rest of its process lifetime, so "lock held" means "that run is alive", however it later
// dies: the kernel releases the lock when the last fd goes. There is deliberately no unlock.
// Same path and lock type as the Python runner and flock(1), so all three interoperate.
// docs/concurrency.md#2-the-app-domain-lock
import { closeSync, futimesSync } from 'node:fs';
import { join } from 'node:path';

import {
  ensureLockDir,
  holderOf,
  legacyLockDir,
  lockfileName,
  lockPath,
  openForLocking,
  probeLockfile,
  type LockState,
} from './lockfiles.js';
import { LOCK_EX, LOCK_NB, flock, flockWait, sameFile } from './native.js';

/** How long a wait may last before it is worth a log line: a janitor's probe holds a free lock for microseconds. */
export const WAIT_LOG_GRACE_MS = 200;

export interface HeldLock {
  readonly domain: string;
  readonly path: string;
  readonly fd: number;
}

// Held for the life of the process: a reference here means the fd is never garbage-collected or
// closed by accident, which would silently release the lock under a live run.
const held = new Map<string, HeldLock>();
// Acquisitions still waiting, by path. flock locks belong to open files, not to processes: a
// second acquire of the same domain in this process would wait on the first one's fd forever, so
// it joins the first one's wait instead.
const acquiring = new Map<string, Promise<HeldLock>>();

export interface AcquireOptions {
  /**
   * The run's AbortSignal: aborting gives up the wait (rejects with `signal.reason`). A free lock
   * is still taken under an already-aborted signal: only the waiting is given up.
   */
  signal?: AbortSignal;
  /** Where the single "waiting" line goes; default stderr. */
  log?: (line: string) => void;
}

/**
 * Takes the exclusive app lock for `domain` and keeps it until the process exits. Waits (off the
 * event loop, cancellable) while another run holds it, logging one line if the wait outlasts
 * {@link WAIT_LOG_GRACE_MS}. After every acquisition it checks that the locked inode is still the
 * one the path names; if a janitor unlinked it meanwhile, it starts over on the live path.
 */
export async function acquireAppLock(domain: string, options: AcquireOptions = {}): Promise<HeldLock> {
  const legacy = legacyLockDir();
  // Always the legacy lock first: every cc-ci run takes the two in the same order, so none can
  // hold one while waiting for the other's holder.
  if (legacy !== null) await acquireAt(domain, join(legacy, lockfileName(domain)), options);
  ensureLockDir();
  return acquireAt(domain, lockPath(domain), options);
}

async function acquireAt(domain: string, path: string, options: AcquireOptions): Promise<HeldLock> {
  for (;;) {
    const already = held.get(path);
    if (already) return already;
    const pending = acquiring.get(path);
    if (!pending) {
      const mine = acquire(domain, path, options).finally(() => acquiring.delete(path));
      acquiring.set(path, mine);
      return mine;
    }
    try {
      return await abortable(pending, options.signal);
    } catch {
      if (options.signal?.aborted) throw options.signal.reason;
      // The first caller gave up (its own signal, or an error it will see too): try ourselves.
    }
  }
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

async function acquire(domain: string, path: string, options: AcquireOptions): Promise<HeldLock> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  let logged = false;
  for (;;) {
    const fd = openForLocking(path);
    try {
      if (!flock(fd, LOCK_EX | LOCK_NB)) {
        const grace = logged
          ? undefined
          : setTimeout(() => {
              logged = true;
              const holder = holderOf(path);
              const who = holder ? ` (held by pid ${holder.pid}${holder.command ? `: ${holder.command}` : ''})` : '';
              log(`== app lock: another run of ${domain} is in flight — waiting${who} ==`);
            }, WAIT_LOG_GRACE_MS);
        try {
          await flockWait(fd, LOCK_EX, { signal: options.signal });
        } finally {
          clearTimeout(grace);
        }
      }
      if (!sameFile(fd, path)) {
        closeSync(fd); // we won an inode a janitor had already unlinked: go again on the live one
        continue;
      }
      const now = new Date();
      futimesSync(fd, now, now); // the lock's age, for the janitor's long-held warning
      const lock: HeldLock = Object.freeze({ domain, path, fd });
      held.set(path, lock);
      return lock;
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }
}

/** The app locks this process holds. */
export function heldAppLocks(): HeldLock[] {
  return [...held.values()];
}

/**
 * Whether a run holds `domain`'s lock right now, through the shared-lock probe. Never creates a
 * lockfile. Throws an InputError for a lockfile that is not a regular file owned by us (directory,
 * FIFO, symlink, foreign owner).
 */
export function probeLock(domain: string): LockState {
  return probeLockfile(lockPath(domain));
}
