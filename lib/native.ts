// The typed face of the C++ addon (`cc-ci/native`). Every export is one system call with the
// kernel's own semantics, except the janitor's three hot-path calls (probeLockFile, dropLockFile,
// readdirMatching), which make the few calls a C loop would; failures are Node-style errors
// (`code`, `errno`, `syscall`, `path`).
// The only JS logic here is flockWait's cancellation plumbing (AbortSignal, timeout).
import { CcciError } from './errors.js';

// Builtins through process.getBuiltinModule: see naming.ts.
const { existsSync } = process.getBuiltinModule('node:fs');
const { createRequire } = process.getBuiltinModule('node:module');
const { dirname, join } = process.getBuiltinModule('node:path');
const { fileURLToPath } = process.getBuiltinModule('node:url');

/** `{dev, ino}` of a file, as bigint: an inode number can exceed 2^53. */
export interface FileIdentity {
  dev: bigint;
  ino: bigint;
}

/** The addon, typed once: every export below is one of these members, with its doc. */
interface Binding {
  /** The hash of the sources the binary was built from (native/load.cjs). */
  sourceHash: string;
  /**
   * flock(2) without blocking: `true` when granted, `false` when busy (no exception is built on that
   * path). `op` is LOCK_SH or LOCK_EX with LOCK_NB, or LOCK_UN. A blocking op is refused: use
   * {@link flockWait}. Note the kernel's rule: a failed conversion drops the lock the fd held.
   */
  flock(fd: number, op: number): boolean;
  /** The raw wait: its promise and a cancel function. Use the exported {@link flockWait}. */
  flockWait(fd: number, op: number): [Promise<void>, () => void];
  /**
   * Opens a lockfile read-only, close-on-exec, without following a symlink and without blocking on a
   * FIFO; with `create`, creates a missing one 0644 whatever the umask (an existing file's mode is
   * left alone). Throws EISDIR / EFTYPE for a path that is not a regular file, EPERM for one owned by
   * another uid, ELOOP for a symlink, and the kernel's error (ENOENT, EACCES, ...) otherwise.
   *
   * The owner is compared with the euid the addon last asked the kernel for, and the kernel is asked
   * again whenever they differ: after a seteuid(), a file owned by the previous euid is accepted
   * until the first file that is not.
   */
  openLockFile(path: string, create: boolean): number;
  /**
   * One probe of a lockfile, as the janitor makes it: open it as {@link openLockFile} does, flock it
   * with `op` (LOCK_SH or LOCK_EX, with LOCK_NB), and check that the path still names the locked
   * inode. Returns the fd, holding the lock, for the caller to close; or, having closed it,
   * {@link PROBE_BUSY} or {@link PROBE_REPLACED}. With `mtimeOut`, `mtimeOut[0]` receives the
   * lockfile's mtime (ms since the epoch) as of after the flock. Throws what openLockFile throws.
   *
   * The identity check reads the inode's link count from the same fstat: lockfiles change only by
   * unlink, never by rename or link, so one link means the path still names it and none means it
   * was unlinked. An inode with several links is compared with the path (lstat) instead.
   */
  probeLockFile(path: string, op: number, create: boolean, mtimeOut?: Float64Array): number;
  /**
   * Unlinks a lockfile, then closes the fd that holds its lock: the order the janitor needs, so a
   * run woken by the release finds the path gone or new. A closed or invalid fd is refused (EBADF)
   * before anything is unlinked; a valid one is closed even when the unlink fails, and the unlink's
   * error (`syscall` `'unlink'`) is thrown after.
   */
  dropLockFile(fd: number, path: string): void;
  /**
   * The shared-lock probe whole, for "does a run hold this lockfile?": the probe of
   * {@link probeLockFile} with LOCK_SH|LOCK_NB on an existing file, closed before returning.
   * {@link PROBE_FREE}, {@link PROBE_BUSY}, {@link PROBE_REPLACED} or {@link PROBE_ABSENT}; throws
   * what openLockFile throws for any other refusal. `mtimeOut` as for probeLockFile.
   */
  probeLockState(path: string, mtimeOut?: Float64Array): number;
  /**
   * The `X` of every entry of `dir` named `prefix + X + suffix` (`X` not empty), in directory order:
   * one pass of getdents(2), with neither the sorting nor the entries `fs.readdirSync` builds. Throws
   * the kernel's error (ENOENT, ENOTDIR, EACCES, ...) as opendir/readdir.
   */
  readdirMatching(dir: string, prefix: string, suffix: string): string[];
  /** `{dev, ino}` of an open fd (fstat). */
  identity(fd: number): FileIdentity;
  /** `{dev, ino}` of a path (stat: follows a symlink). */
  pathIdentity(path: string): FileIdentity;
  /**
   * True only if the fd and the path are the same inode on the same device; false if the path is
   * gone. The path itself is compared (lstat): a symlink there is not the file it points to.
   */
  sameFile(fd: number, path: string): boolean;
  /** prctl(PR_SET_PDEATHSIG): the signal this process gets when the thread that forked it dies. */
  setPdeathsig(signal: number): void;
  /** prctl(PR_GET_PDEATHSIG). */
  getPdeathsig(): number;
  /** prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants are re-parented to this process. */
  setChildSubreaper(on: boolean): void;
  /** prctl(PR_GET_CHILD_SUBREAPER). */
  getChildSubreaper(): boolean;
  /** alarm(2): SIGALRM after `seconds` (0 cancels); returns the seconds left on the previous alarm. */
  alarm(seconds: number): number;
  /**
   * sigaction(SIG_DFL) for `signal`, underneath Node: the kernel's default action applies again even
   * though JS listeners remain registered. For last-resort backstops only.
   */
  resetSignalDefault(signal: number): void;
  /**
   * The teardown's kernel backstop in one call: SIGALRM back to its default action (as
   * {@link resetSignalDefault}), then alarm(2) for `seconds` (at least 1): the process ends then,
   * whatever its event loop does.
   */
  armAlarmBackstop(seconds: number): void;
  /** getppid(2), asked of the kernel on every call. */
  getppid(): number;
  /** setsid(2): a new session and process group led by this process. */
  setsid(): number;
  LOCK_SH: number;
  LOCK_EX: number;
  LOCK_NB: number;
  LOCK_UN: number;
  /** {@link probeLockFile}: another open file holds a conflicting lock. */
  PROBE_BUSY: number;
  /** {@link probeLockFile}: the lock was granted, but the path no longer names the locked inode. */
  PROBE_REPLACED: number;
  /** {@link probeLockState}: nobody holds a conflicting lock. */
  PROBE_FREE: number;
  /** {@link probeLockState}: there is no file at the path. */
  PROBE_ABSENT: number;
  /**
   * The real-time signal the addon sends to a waiting thread to cancel it. A JS listener for it
   * would replace the native handler and make cancellation hang: do not listen for it.
   */
  WAIT_CANCEL_SIGNAL: number;
}

// Source (lib/) and build output (dist/lib/) sit at different depths below the package root.
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'binding.gyp'))) {
    const parent = dirname(dir);
    if (parent === dir)
      throw new CcciError('ERR_CCCI_PACKAGE_ROOT', `cannot find the package root (binding.gyp) above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
  return dir;
}

const require = createRequire(import.meta.url);

/** The binary loaded, and the hash of the sources it was built from (native/load.cjs). */
function load(root: string): { binding: Binding; path: string } {
  const { loadAddon } = require(join(root, 'native', 'load.cjs')) as { loadAddon(root: string): { binding: Binding; path: string } };
  try {
    return loadAddon(root);
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    throw code === 'ERR_CCCI_ADDON_STALE' ? new CcciError(code, message) : error;
  }
}

const loaded = load(packageRoot());
const binding = loaded.binding;

/** The path of the addon binary this process loaded: the local build or a prebuild. */
export const addonPath: string = loaded.path;

export const {
  sourceHash,
  LOCK_SH,
  LOCK_EX,
  LOCK_NB,
  LOCK_UN,
  WAIT_CANCEL_SIGNAL,
  flock,
  openLockFile,
  PROBE_BUSY,
  PROBE_REPLACED,
  PROBE_FREE,
  PROBE_ABSENT,
  probeLockFile,
  probeLockState,
  dropLockFile,
  readdirMatching,
  identity,
  pathIdentity,
  sameFile,
  setPdeathsig,
  getPdeathsig,
  setChildSubreaper,
  getChildSubreaper,
  alarm,
  resetSignalDefault,
  armAlarmBackstop,
  getppid,
  setsid,
} = binding;

export interface FlockWaitOptions {
  /** Aborting rejects the wait with `signal.reason`. */
  signal?: AbortSignal;
  /** Gives up after this many milliseconds with an error whose `code` is `'ETIMEDOUT'`. */
  timeoutMs?: number;
}

// setTimeout fires at once (with a warning) past this; a longer timeout is a caller's mistake.
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

function argumentError(error: TypeError | RangeError, code: string): Error {
  return Object.assign(error, { code });
}

/**
 * Waits for LOCK_SH or LOCK_EX on a thread of its own (not libuv's pool) and resolves as soon as
 * the kernel grants it. Cancelled by `signal` or `timeoutMs` within milliseconds; a cancelled
 * wait leaves the fd as it was (unlocked, or holding the lock it held before a conversion). The
 * kernel converts a lock by unlocking first: if another process locks the file exclusively during
 * a cancelled conversion, the old lock cannot be taken back without blocking, and the wait
 * rejects with `code` `'ERR_CCCI_LOCK_LOST'` (its `cause` is the cancel reason) instead.
 */
export function flockWait(fd: number, op: number, options: FlockWaitOptions = {}): Promise<void> {
  const { signal, timeoutMs } = options;
  if (signal !== undefined && (typeof signal !== 'object' || signal === null || !('aborted' in signal))) {
    throw argumentError(
      new TypeError(`The "options.signal" property must be an instance of AbortSignal. Received ${typeof signal}`),
      'ERR_INVALID_ARG_TYPE',
    );
  }
  if (timeoutMs !== undefined && !(typeof timeoutMs === 'number' && timeoutMs >= 0 && timeoutMs <= MAX_TIMEOUT_MS)) {
    throw argumentError(
      new RangeError(
        `The value of "options.timeoutMs" is out of range. It must be >= 0 && <= ${MAX_TIMEOUT_MS}. Received ${String(timeoutMs)}`,
      ),
      'ERR_OUT_OF_RANGE',
    );
  }
  // Already aborted: nothing is tried (a caller may use this as "lock only if free" after its own try).
  if (signal?.aborted) return Promise.reject(signal.reason);
  const [promise, cancel] = binding.flockWait(fd, op);
  if (!signal && timeoutMs === undefined) return promise;

  let cancelReason: unknown;
  const stop = (reason: unknown): void => {
    if (cancelReason === undefined) cancelReason = reason;
    cancel();
  };
  const onAbort = (): void => stop(signal!.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const timer =
    timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          stop(
            Object.assign(new Error(`ETIMEDOUT: lock wait timed out after ${timeoutMs} ms, flock`), {
              code: 'ETIMEDOUT',
              syscall: 'flock',
            }),
          );
        }, timeoutMs);
  const cleanup = (): void => {
    signal?.removeEventListener('abort', onAbort);
    if (timer !== undefined) clearTimeout(timer);
  };
  return promise.then(
    () => cleanup(),
    (error: NodeJS.ErrnoException) => {
      cleanup();
      if (cancelReason !== undefined && error.code === 'ECANCELED') throw cancelReason;
      if (cancelReason !== undefined && error.code === 'ERR_CCCI_LOCK_LOST') error.cause = cancelReason;
      throw error;
    },
  );
}
