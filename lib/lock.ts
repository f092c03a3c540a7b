// The app-domain lock. A run holds an exclusive flock(2) on `<dir>/cc-ci-app-<domain>.lock` for
// the rest of its process lifetime, so "lock held" means "that run is alive", however it later
// dies: the kernel releases the lock when the last fd goes. There is deliberately no unlock.
//
// Same path and lock type as the Python runner and flock(1), so all three interoperate.
import { chmodSync, closeSync, futimesSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

import { absoluteDir, assertDomain } from './naming.js';
import { LOCK_EX, LOCK_NB, LOCK_SH, LOCK_UN, flock, flockWait, openLockFile, pathIdentity, readdirMatching, sameFile } from './native.js';

export const DEFAULT_LOCK_DIR = '/run/lock';
/** Lockfiles are `<dir>/<LOCKFILE_PREFIX><domain><LOCKFILE_SUFFIX>`. */
export const LOCKFILE_PREFIX = 'cc-ci-app-';
export const LOCKFILE_SUFFIX = '.lock';
const PREFIX = LOCKFILE_PREFIX;
const SUFFIX = LOCKFILE_SUFFIX;

/** How long a wait may last before it is worth a log line: a janitor's probe holds a free lock for microseconds. */
export const WAIT_LOG_GRACE_MS = 200;

/**
 * `CCCI_APP_LOCK_DIR`, read at call time; default `/run/lock`. Must be absolute: two runs started
 * in different directories would otherwise lock different files for the same app.
 */
export function lockDir(): string {
  return absoluteDir('CCCI_APP_LOCK_DIR', process.env.CCCI_APP_LOCK_DIR || DEFAULT_LOCK_DIR);
}

/**
 * `CCCI_LEGACY_LOCK_DIR`, for the move to a private lock dir: the old shared dir (`/run/lock`),
 * where runners that still use it (the Python runner, an older cc-ci) hold their locks. When set,
 * a run holds its lock there too and the janitor treats a lock held there as a live run. Null when
 * unset or the same as the lock dir.
 */
export function legacyLockDir(): string | null {
  const legacy = process.env.CCCI_LEGACY_LOCK_DIR;
  return legacy && legacy !== lockDir() ? absoluteDir('CCCI_LEGACY_LOCK_DIR', legacy) : null;
}

/** `cc-ci-app-<domain>.lock`, after validating the domain. */
export function lockfileName(domain: string): string {
  assertDomain(domain);
  return `${PREFIX}${domain}${SUFFIX}`;
}

/** `<lockDir()>/cc-ci-app-<domain>.lock`, after validating the domain. */
export function lockPath(domain: string): string {
  return join(lockDir(), lockfileName(domain));
}

/**
 * Makes sure the lock dir can be trusted, creating it 0755 (whatever the umask) when it is missing
 * and its parent exists. Refuses a path that is not a directory, and a directory that others may
 * write to without the sticky bit (they could swap lockfiles under a run). A sticky, world-writable
 * dir such as /run/lock is accepted: lockfiles there are opened without following symlinks and
 * must be regular files we own, so a planted file blocks nothing and tricks no janitor.
 */
export function ensureLockDir(): string {
  const dir = lockDir();
  try {
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw lockDirError(dir, 'does not exist and its parent is missing too');
    if (code !== 'EEXIST') throw lockDirError(dir, `cannot be created (${code})`);
  }
  const stat = statSync(dir);
  if (!stat.isDirectory()) throw lockDirError(dir, 'is not a directory');
  if ((stat.mode & 0o022) !== 0 && (stat.mode & 0o1000) === 0) {
    throw lockDirError(dir, `is writable by others without the sticky bit (mode ${(stat.mode & 0o7777).toString(8)})`);
  }
  return dir;
}

function lockDirError(dir: string, why: string): Error {
  return Object.assign(new Error(`cc-ci: lock dir ${dir} ${why} (CCCI_APP_LOCK_DIR)`), { code: 'ERR_CCCI_LOCK_DIR', path: dir });
}

/** The domain a lockfile name stands for, or null for any other file. */
export function domainOfLockfile(name: string): string | null {
  return name.startsWith(PREFIX) && name.endsWith(SUFFIX) && name.length > PREFIX.length + SUFFIX.length
    ? name.slice(PREFIX.length, -SUFFIX.length)
    : null;
}

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

export type LockState = 'held' | 'free' | 'absent';

/**
 * Whether a run holds `domain`'s lock right now. Never creates a lockfile. Throws a clear error for
 * a lockfile that is not a regular file owned by us (directory, FIFO, symlink, foreign owner).
 */
export function probeLock(domain: string): LockState {
  const path = lockPath(domain);
  let fd: number;
  try {
    fd = openLockFile(path, false);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw lockfileError(error, path);
  }
  try {
    // A shared probe never conflicts with another prober, only with a run's exclusive lock.
    if (!flock(fd, LOCK_SH | LOCK_NB)) return 'held';
    flock(fd, LOCK_UN);
    return 'free';
  } finally {
    closeSync(fd);
  }
}

/**
 * Opens (creating when absent) a lockfile for locking, turning the kernel's refusals into errors
 * that say which lockfile and why. Exported for the janitor, which probes with the same rules.
 */
export function openForLocking(path: string, create = true): number {
  try {
    return openLockFile(path, create);
  } catch (error) {
    throw lockfileError(error, path);
  }
}

// Names the dir the lockfile is in, and the variable that chose it (the legacy dir, during a move
// to a private one, is CCCI_LEGACY_LOCK_DIR's).
function lockfileError(error: unknown, path: string): Error {
  const e = error as NodeJS.ErrnoException;
  const dir = dirname(path);
  const legacy = legacyLockDir();
  const variable = legacy !== null && resolve(dir) === resolve(legacy) ? 'CCCI_LEGACY_LOCK_DIR' : 'CCCI_APP_LOCK_DIR';
  let why: string | undefined;
  if (e.code === 'ENOENT') why = `lock dir ${dir} does not exist (set ${variable} or create it)`;
  else if (e.code === 'EACCES' || e.code === 'EROFS') why = `cannot open or create lockfile ${path} (${e.code}): check the permissions of lock dir ${dir} (${variable}) and of the file`;
  if (why === undefined) return e;
  return Object.assign(new Error(`cc-ci: ${why}`, { cause: e }), { code: e.code, path });
}

export interface LockHolder {
  domain: string;
  path: string;
  pid: number;
  /** The holder's command line from /proc/<pid>/cmdline, or null when it cannot be read. */
  command: string | null;
}

// /proc/locks prints the device as hex `major:minor` of the kernel's dev_t encoding.
function deviceKey(dev: bigint, ino: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${ino}`;
}

/** Parses /proc/locks into `major:minor:inode` → pid of each granted FLOCK lock. */
export function parseProcLocks(text: string): Map<string, number> {
  const owners = new Map<string, number>();
  for (const line of text.split('\n')) {
    // "1: FLOCK  ADVISORY  WRITE 1234 fd:00:2146501 0 EOF"; waiters carry "->" and hold nothing.
    const match = /^\d+:\s+FLOCK\s+\S+\s+(READ|WRITE)\s+(\d+)\s+([0-9a-f]+:[0-9a-f]+:\d+)\s/.exec(line);
    if (match && !owners.has(match[3]!)) owners.set(match[3]!, Number(match[2]));
  }
  return owners;
}

function readProcLocks(): Map<string, number> {
  try {
    return parseProcLocks(readFileSync('/proc/locks', 'utf8'));
  } catch {
    return new Map();
  }
}

function commandOf(pid: number): string | null {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw.replace(/\0+$/, '').split('\0').join(' ') || null;
  } catch {
    return null;
  }
}

function holderFrom(owners: Map<string, number>, path: string): { pid: number; command: string | null } | null {
  let id;
  try {
    id = pathIdentity(path);
  } catch {
    return null;
  }
  const pid = owners.get(deviceKey(id.dev, id.ino));
  return pid === undefined ? null : { pid, command: commandOf(pid) };
}

/** Who holds the lockfile at `path`, as /proc/locks tells it (the pid that took the lock). */
export function holderOf(path: string): { pid: number; command: string | null } | null {
  return holderFrom(readProcLocks(), path);
}

/** Every app lockfile in the lock dir that some process holds, with that process. */
export function lockHolders(): LockHolder[] {
  const owners = readProcLocks();
  const holders: LockHolder[] = [];
  for (const name of listLockfiles()) {
    const domain = domainOfLockfile(name)!;
    const path = join(lockDir(), name);
    const holder = holderFrom(owners, path);
    if (holder) holders.push({ domain, path, ...holder });
  }
  return holders;
}

/** Names of the `cc-ci-app-*.lock` files in the lock dir, sorted; none when the dir is missing. */
export function listLockfiles(): string[] {
  let domains: string[];
  try {
    domains = readdirMatching(lockDir(), PREFIX, SUFFIX);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return domains.map((domain) => `${PREFIX}${domain}${SUFFIX}`).sort();
}
