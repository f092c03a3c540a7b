// What the kernel says about flock locks, for the lock and native suites: /proc/locks (who holds,
// who waits) and /proc/self/fdinfo (what one open file holds). Tests assert on these rather than
// on what our own code believes.
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { startProcess, tempDir } from './processes.js';

export interface KernelLock {
  pid: number;
  type: 'READ' | 'WRITE';
  /** A blocked request ("->" in /proc/locks), not a granted lock. */
  waiting: boolean;
  /** `major:minor:inode` as /proc/locks prints it. */
  key: string;
}

export function kernelFlocks(): KernelLock[] {
  const locks: KernelLock[] = [];
  for (const line of readFileSync('/proc/locks', 'utf8').split('\n')) {
    const match = /^\d+:\s+(->\s+)?FLOCK\s+\S+\s+(READ|WRITE)\s+(\d+)\s+(\S+)\s/.exec(line);
    if (match) locks.push({ waiting: !!match[1], type: match[2] as 'READ' | 'WRITE', pid: Number(match[3]), key: match[4]! });
  }
  return locks;
}

/** The /proc/locks key of a path's inode. */
export function inodeKey(path: string): string {
  const st = statSync(path, { bigint: true });
  const major = ((st.dev >> 8n) & 0xfffn) | ((st.dev >> 32n) & ~0xfffn);
  const minor = (st.dev & 0xffn) | ((st.dev >> 12n) & ~0xffn);
  return `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${st.ino}`;
}

/** Blocked flock requests of `pid` (on the inode of `path`, when given). */
export function waitersOf(pid: number, path?: string): KernelLock[] {
  const key = path === undefined ? undefined : inodeKey(path);
  return kernelFlocks().filter((lock) => lock.waiting && lock.pid === pid && (key === undefined || lock.key === key));
}

/** The flock lock this process's open file `fd` holds, as the kernel lists it in fdinfo. */
export function fdLock(fd: number): 'READ' | 'WRITE' | null {
  const info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  const match = /^lock:.*\bFLOCK\b.*\b(READ|WRITE)\b/m.exec(info);
  return match ? (match[1] as 'READ' | 'WRITE') : null;
}

/**
 * Whether util-linux `flock -n` can take an exclusive lock on `path` right now (it opens the file
 * itself, so this is a foreign process's view). Never blocks.
 */
export function flockCanTake(path: string): boolean {
  const result = spawnSync('flock', ['-n', '-x', path, 'true'], { stdio: 'ignore', timeout: 10_000 });
  if (result.error) throw result.error;
  return result.status === 0;
}

/** Milliseconds `promise` takes to settle, and how. */
export async function timed<T>(promise: Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const t0 = performance.now();
  try {
    const value = await promise;
    return { ms: performance.now() - t0, value };
  } catch (error) {
    return { ms: performance.now() - t0, error };
  }
}

/**
 * A lockfile held exclusively by a separate `flock(1)` process until `release()` or the test's
 * cleanup kills it. `-o`: its command does not inherit the lock, so the lock goes exactly when
 * flock(1) exits.
 */
export async function heldElsewhere(): Promise<{ path: string; release: () => Promise<void> }> {
  const path = join(tempDir(), 'held.lock');
  const holder = startProcess('flock', ['-x', '-o', path, 'sh', '-c', 'echo HELD; exec sleep 300']);
  await holder.waitFor('HELD');
  return {
    path,
    release: async () => {
      process.kill(-holder.pid, 'SIGKILL');
      await holder.exited;
    },
  };
}
