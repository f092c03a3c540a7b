// App lockfiles as files: where they live, what they are named, the one shared-lock probe that says
// whether a run holds one, and who that run is (/proc/locks). lock.ts takes and keeps the lock;
// janitor.ts reaps behind it; `cc-ci locks` lists them. docs/concurrency.md#2-the-app-domain-lock
import { InputError } from './errors.js';
import { absoluteDir, assertDomain } from './naming.js';
import { PROBE_BUSY, PROBE_FREE, openLockFile, pathIdentity, probeLockState, readdirMatching } from './native.js';

// Builtins through process.getBuiltinModule: see naming.ts.
const { chmodSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync } = process.getBuiltinModule('node:fs');
const { dirname, join, resolve } = process.getBuiltinModule('node:path');

export const DEFAULT_LOCK_DIR = '/run/lock';
/** Lockfiles are `<dir>/<LOCKFILE_PREFIX><domain><LOCKFILE_SUFFIX>`. */
export const LOCKFILE_PREFIX = 'cc-ci-app-';
export const LOCKFILE_SUFFIX = '.lock';

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
  return `${LOCKFILE_PREFIX}${domain}${LOCKFILE_SUFFIX}`;
}

// The domains lockPath() validated last: a probe loop asks for the same few again and again.
const validated = new Set<string>();

/** `<lockDir()>/cc-ci-app-<domain>.lock`, after validating the domain. */
export function lockPath(domain: string): string {
  const dir = lockDir();
  if (!validated.has(domain)) {
    assertDomain(domain);
    if (validated.size >= 1024) validated.clear();
    validated.add(domain);
  }
  // Plain concatenation: lockDir() is absolute, and join()'s normalising is a third of a probe's JS cost.
  return `${dir}${dir.endsWith('/') ? '' : '/'}${LOCKFILE_PREFIX}${domain}${LOCKFILE_SUFFIX}`;
}

/** The domain a lockfile name stands for, or null for any other file. */
export function domainOfLockfile(name: string): string | null {
  return name.startsWith(LOCKFILE_PREFIX) && name.endsWith(LOCKFILE_SUFFIX) && name.length > LOCKFILE_PREFIX.length + LOCKFILE_SUFFIX.length
    ? name.slice(LOCKFILE_PREFIX.length, -LOCKFILE_SUFFIX.length)
    : null;
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
  checkLockDir(dir);
  return dir;
}

/**
 * The refusals of {@link ensureLockDir} for a lock dir that exists, creating nothing: throws its
 * InputError for a path that is not a directory, or one others may write to without the sticky
 * bit, and the kernel's error (ENOENT, ...) when the path cannot be read. `cc-ci doctor` asks this.
 */
export function checkLockDir(dir: string): void {
  const stat = statSync(dir);
  if (!stat.isDirectory()) throw lockDirError(dir, 'is not a directory');
  if ((stat.mode & 0o022) !== 0 && (stat.mode & 0o1000) === 0) {
    throw lockDirError(dir, `is writable by others without the sticky bit (mode ${(stat.mode & 0o7777).toString(8)})`);
  }
}

function lockDirError(dir: string, why: string): InputError {
  return new InputError(`lock dir ${dir} ${why} (CCCI_APP_LOCK_DIR)`, { code: 'ERR_CCCI_LOCK_DIR', path: dir });
}

/**
 * Opens (creating when absent) a lockfile for locking. The kernel's refusals (a directory, FIFO or
 * symlink planted at the path, a foreign owner, a missing or unwritable dir) become an InputError
 * that keeps the errno `code` and names the lockfile, its dir and the variable that chose it.
 */
export function openForLocking(path: string, create = true): number {
  try {
    return openLockFile(path, create);
  } catch (error) {
    throw lockfileError(error, path);
  }
}

// What the addon refuses to lock (docs/native.md#lockfile-rules): its own message already names the file.
const REFUSED = new Set(['EISDIR', 'EFTYPE', 'ELOOP', 'EPERM']);

/** A lockfile the kernel or the addon refused, as an InputError; other errors pass through unchanged. */
export function lockfileError(error: unknown, path: string): unknown {
  const e = error as NodeJS.ErrnoException;
  if (typeof e?.code !== 'string') return error;
  if (REFUSED.has(e.code))
    return Object.assign(new InputError(e.message, { code: e.code, path, cause: e }), { errno: e.errno, syscall: e.syscall });
  const dir = dirname(path);
  const legacy = legacyLockDir();
  const variable = legacy !== null && resolve(dir) === resolve(legacy) ? 'CCCI_LEGACY_LOCK_DIR' : 'CCCI_APP_LOCK_DIR';
  let why: string | undefined;
  if (e.code === 'ENOENT') why = `lock dir ${dir} does not exist (set ${variable} or create it)`;
  else if (e.code === 'EACCES' || e.code === 'EROFS') {
    why = `cannot open or create lockfile ${path} (${e.code}): check the permissions of lock dir ${dir} (${variable}) and of the file`;
  }
  if (why === undefined) return error;
  return Object.assign(new InputError(why, { code: e.code, path, cause: e }), { errno: e.errno, syscall: e.syscall });
}

export type LockState = 'held' | 'free' | 'absent';

/**
 * The shared-lock probe: is the lockfile at `path` held by a run right now? One addon call (open,
 * flock(LOCK_SH|LOCK_NB), fstat, close). A shared probe never
 * conflicts with another prober, only with a run's exclusive lock. Never creates the file. With
 * `mtimeOut`, `mtimeOut[0]` receives the lockfile's mtime. A lockfile that is not a regular file we
 * own throws (see {@link lockfileError}).
 */
export function probeLockfile(path: string, mtimeOut?: Float64Array): LockState {
  let state: number;
  try {
    state = probeLockState(path, mtimeOut);
  } catch (error) {
    throw lockfileError(error, path);
  }
  if (state === PROBE_BUSY) return 'held';
  if (state === PROBE_FREE) return 'free';
  return 'absent'; // no file, or unlinked as we looked: nobody can hold that path now
}

/** Names of the `cc-ci-app-*.lock` files in the lock dir, sorted; none when the dir is missing. */
export function listLockfiles(): string[] {
  let domains: string[];
  try {
    domains = readdirMatching(lockDir(), LOCKFILE_PREFIX, LOCKFILE_SUFFIX);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return domains.map((domain) => `${LOCKFILE_PREFIX}${domain}${LOCKFILE_SUFFIX}`).sort();
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
  let id: ReturnType<typeof pathIdentity>;
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
    const path = join(lockDir(), name);
    const holder = holderFrom(owners, path);
    if (holder) holders.push({ domain: domainOfLockfile(name)!, path, ...holder });
  }
  return holders;
}

/**
 * Domains of the lockfiles in `dir` that were unlinked while a process still holds a lock on them
 * (they show as `<path> (deleted)` among its fds). The janitor looks only when a candidate's
 * lockfile is absent: without it, deleting a live run's lockfile by hand would make that run look dead.
 */
export function lockfilesHeldAfterUnlink(dir: string): Set<string> {
  const found = new Set<string>();
  let prefix: string;
  let owners: Map<string, number>;
  try {
    prefix = `${realpathSync(dir)}/${LOCKFILE_PREFIX}`;
    owners = parseProcLocks(readFileSync('/proc/locks', 'utf8'));
  } catch {
    return found;
  }
  const lockedInodes = new Set<string>();
  for (const key of owners.keys()) lockedInodes.add(key.slice(key.lastIndexOf(':') + 1));
  const deleted = `${LOCKFILE_SUFFIX} (deleted)`;
  for (const pid of new Set(owners.values())) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to look at
    }
    for (const fd of fds) {
      try {
        const link = `/proc/${pid}/fd/${fd}`;
        const target = readlinkSync(link);
        if (!target.startsWith(prefix) || !target.endsWith(deleted)) continue;
        // Only an fd on a locked inode counts: a waiter's fd on an unlinked file holds nothing.
        if (lockedInodes.has(String(statSync(link, { bigint: true }).ino))) {
          found.add(target.slice(prefix.length, -deleted.length));
        }
      } catch {
        // closed meanwhile
      }
    }
  }
  return found;
}

/** One app lockfile, as `cc-ci locks` shows it. */
export interface AppLockInfo {
  domain: string;
  path: string;
  state: 'held' | 'free';
  /** Time since the lockfile's mtime: since its holder took it, or since the last run took it. */
  ageMs: number;
  /** The holder as /proc/locks names it; null when free (or when the kernel does not tell). */
  holder: { pid: number; command: string | null } | null;
}

/**
 * Every `cc-ci-app-*.lock` in the lock dir, sorted by domain, each through the shared-lock probe
 * (which never disturbs a run). Entries that are not lockfiles (a directory, a FIFO) are left out
 * and passed to `onBad`.
 */
export function inspectAppLocks(onBad: (path: string, why: string) => void = () => {}): AppLockInfo[] {
  const dir = lockDir();
  const names = listLockfiles();
  const holders = names.length === 0 ? new Map<string, LockHolder>() : new Map(lockHolders().map((h) => [h.path, h]));
  const now = Date.now();
  const locks: AppLockInfo[] = [];
  const mtime = new Float64Array(1);
  for (const name of names) {
    const path = `${dir}/${name}`;
    let state: LockState;
    try {
      state = probeLockfile(path, mtime);
    } catch (error) {
      onBad(path, (error as Error).message);
      continue;
    }
    if (state === 'absent') continue; // unlinked while we looked (reaped or tidied): gone
    const holder = state === 'held' ? holders.get(path) : undefined;
    locks.push({
      domain: domainOfLockfile(name)!,
      path,
      state,
      ageMs: Math.max(0, Math.round(now - mtime[0]!)),
      holder: holder ? { pid: holder.pid, command: holder.command } : null,
    });
  }
  return locks.sort((a, b) => (a.domain < b.domain ? -1 : a.domain > b.domain ? 1 : 0));
}
