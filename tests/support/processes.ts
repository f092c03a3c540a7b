// Real helper processes for the real-kernel suites, and the cleanup that reaps every one of them.
//
// Each helper runs in its own process group (detached), so cleanup can SIGKILL the helper and any
// grandchild it left behind in one call. `useHelpers()` registers that cleanup for a test file and
// gives each test a private temp dir to keep its lockfiles in.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterEach } from 'vitest';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const HELPERS = join(ROOT, 'tests', 'helpers');
export const CLI = join(ROOT, 'dist', 'runner', 'cli.js');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Helper {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Every stdout and stderr line so far, in arrival order. */
  readonly lines: string[];
  /** Resolves with the first line (past or future) matching `pattern`; rejects on timeout or exit. */
  waitFor(pattern: RegExp | string, timeoutMs?: number): Promise<string>;
  /**
   * Resolves when the process has exited (zombies count: the kernel has released its locks) and its
   * output is in: both pipes ended, or OUTPUT_GRACE_MS passed (a descendant may hold them open).
   */
  readonly exited: Promise<Exit>;
  /** All output as one string. */
  output(): string;
}

/** How long `exited` waits for the output pipes to end after the exit. */
const OUTPUT_GRACE_MS = 200;

const live = new Set<Helper>();
const dirs = new Set<string>();

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Own process group (default true): cleanup kills the whole group. */
  detached?: boolean;
}

/** Starts `command args` as a tracked helper process with piped output. */
export function startProcess(command: string, args: string[], options: StartOptions = {}): Helper {
  const child = spawn(command, args, {
    env: { ...process.env, ...options.env },
    cwd: options.cwd ?? ROOT,
    detached: options.detached ?? true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  const lines: string[] = [];
  const waiters: { pattern: RegExp | string; resolve: (line: string) => void }[] = [];
  const matches = (line: string, pattern: RegExp | string): boolean =>
    typeof pattern === 'string' ? line.includes(pattern) : pattern.test(line);
  const onLine = (line: string): void => {
    lines.push(line);
    for (const waiter of [...waiters]) {
      if (matches(line, waiter.pattern)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  };
  for (const stream of [child.stdout!, child.stderr!]) {
    let pending = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      pending += chunk;
      const parts = pending.split('\n');
      pending = parts.pop()!;
      parts.forEach(onLine);
    });
    stream.on('end', () => pending && onLine(pending));
  }
  // 'exit' can come before the last lines of stdout and stderr (two pipes, read in no set order):
  // wait for both to end, or for OUTPUT_GRACE_MS when a descendant keeps them open.
  const ended = Promise.all([child.stdout!, child.stderr!].map((stream) => new Promise((resolve) => stream.once('end', resolve))));
  const exited = new Promise<Exit>((resolve) =>
    child.on('exit', (code, signal) => {
      let timer: NodeJS.Timeout | undefined;
      void Promise.race([ended, new Promise((r) => (timer = setTimeout(r, OUTPUT_GRACE_MS)))]).then(() => {
        clearTimeout(timer);
        resolve({ code, signal });
      });
    }),
  );

  const helper: Helper = {
    child,
    pid: child.pid,
    lines,
    exited,
    output: () => lines.join('\n'),
    waitFor(pattern, timeoutMs = 10_000) {
      const seen = lines.find((line) => matches(line, pattern));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<string>((resolve, reject) => {
        const fail = (why: string): void =>
          reject(new Error(`helper ${child.pid} ${why} before printing ${pattern}; output:\n${lines.join('\n')}`));
        const timer = setTimeout(() => fail(`took over ${timeoutMs} ms`), timeoutMs);
        const waiter = {
          pattern,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        waiters.push(waiter);
        void exited.then(async () => {
          await new Promise((r) => setTimeout(r, 50)); // let the last output lines arrive
          if (waiters.includes(waiter)) {
            clearTimeout(timer);
            fail('exited');
          }
        });
      });
    },
  };
  live.add(helper);
  return helper;
}

/** Starts `node tests/helpers/<script> args`. */
export function startHelper(script: string, args: string[] = [], options: StartOptions = {}): Helper {
  return startProcess(process.execPath, [join(HELPERS, script), ...args], options);
}

/** Starts the built CLI: `node dist/runner/cli.js args`. */
export function startCli(args: string[], options: StartOptions = {}): Helper {
  return startProcess(process.execPath, [CLI, ...args], options);
}

/**
 * True once `pid` has exited, counting a zombie as exited (pid 1 may be slow to reap it). Every
 * thread is checked: a Node process's main thread can be a zombie while others still exit, and
 * until they have, its fds (and locks) are not released.
 */
export function isGone(pid: number): boolean {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return true;
  }
  return tasks.every((tid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
    } catch {
      return true;
    }
  });
}

/** Polls (test-side only) until `predicate` holds, or fails after `timeoutMs`. */
export async function eventually<T>(predicate: () => T | Promise<T>, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A temp dir removed by the cleanup after the test. */
export function tempDir(prefix = 'ccci-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(dir);
  return dir;
}

const stops = new Set<() => Promise<void>>();

/**
 * Runs `stop` at the next cleanup(), before the helpers are killed: for what a test starts that is
 * not a helper process or a temp dir (an etcd cluster's proxies and tmpfs data). The returned
 * function unregisters it (a cluster stopped by its test).
 */
export function atCleanup(stop: () => Promise<void>): () => void {
  stops.add(stop);
  return () => stops.delete(stop);
}

/** Runs the atCleanup() stops, SIGKILLs every helper's process group, waits for each to exit, removes temp dirs. */
export async function cleanup(): Promise<void> {
  const pending = [...stops];
  stops.clear();
  await Promise.allSettled(pending.map((stop) => stop()));
  const helpers = [...live];
  live.clear();
  for (const helper of helpers) {
    for (const target of [-helper.pid, helper.pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  await Promise.all(helpers.map((helper) => helper.exited));
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
}

/**
 * For a test file: reap helpers and temp dirs after each test, and give the test a fresh lock dir
 * exported as CCCI_APP_LOCK_DIR (helpers inherit it through process.env).
 */
export function useHelpers(): { lockDir: () => string } {
  let current = '';
  afterEach(async () => {
    await cleanup();
    delete process.env.CCCI_APP_LOCK_DIR;
  });
  return {
    lockDir: () => {
      if (!current || !process.env.CCCI_APP_LOCK_DIR) {
        current = tempDir('ccci-locks-');
        process.env.CCCI_APP_LOCK_DIR = current;
      }
      return current;
    },
  };
}
