// The recipe's CI contract, as a run carries it out: the tests dir (the recipe's own tests/,
// snapshotted at fetch, with the operator's dir laid over it file by file), its hooks and its
// tests, each run with exactly the environment the contract hands out. docs/recipes.md
import { accessSync, constants, cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { execa } from 'execa';

import { checkActGates } from '../../lib/act-gate.js';
import type { Log } from '../host/log.js';
import { timings } from '../host/timings.js';
import type { Check } from './results.js';

export const HOOKS = { installSteps: 'install_steps.sh', setupCustomTests: 'setup_custom_tests.sh' } as const;

/** The exit code that says "skipped" (automake's convention); the last stderr line says why. */
export const SKIP_EXIT = 77;

export const DEFAULT_TESTS_DIR = '/etc/cc-ci/tests';

/**
 * Builds the run's tests dir, `<run dir>/tests`: the recipe's tests/ (from `tree`, at the code
 * under test), then the operator's `$CCCI_TESTS_DIR/<recipe>/` copied over it, the operator's file
 * winning on a name clash. Null when neither exists. Logs where each came from.
 */
export function assembleTests(options: { tree: string; operatorDir: string; runDir: string; log: Log }): string | null {
  const { tree, operatorDir, runDir, log } = options;
  const own = join(tree, 'tests');
  const dest = join(runDir, 'tests');
  rmSync(dest, { recursive: true, force: true });
  const sources = [own, operatorDir].filter((dir) => existsSync(dir) && statSync(dir).isDirectory());
  log(
    `== tests: the recipe's tests/ ${sources.includes(own) ? `(${listing(own)})` : '(none)'}; the operator's ${operatorDir} ${sources.includes(operatorDir) ? `(${listing(operatorDir)})` : '(none)'} ==`,
  );
  if (sources.length === 0) return null;
  mkdirSync(dest, { recursive: true });
  for (const source of sources) cpSync(source, dest, { recursive: true, force: true, verbatimSymlinks: true });
  return dest;
}

function listing(dir: string): string {
  const names = readdirSync(dir).sort();
  return names.length ? names.join(', ') : 'empty';
}

/** The tests in `dir`, in name order: every `test_*` file and every other `*.sh` that is not a hook. */
export function testFiles(dir: string): string[] {
  const hooks = new Set<string>(Object.values(HOOKS));
  return readdirSync(dir)
    .filter((name) => (name.startsWith('test_') || name.endsWith('.sh')) && !hooks.has(name) && statSync(join(dir, name)).isFile())
    .sort();
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface ScriptOptions {
  dir: string;
  /** The whole environment the script gets: nothing of the runner's own is added. */
  env: Record<string, string>;
  timeoutMs: number;
  signal: AbortSignal;
  log: Log;
}

/**
 * Runs one hook or test: executed when executable, else (a `*.sh`) through `sh`. Exit 0 passes,
 * 77 skips (the last stderr line is the reason), anything else fails. An abort rejects.
 */
export async function runScript(name: string, options: ScriptOptions): Promise<Check> {
  const { dir, env, timeoutMs, signal, log } = options;
  const path = join(dir, name);
  const started = Date.now();
  const done = (verdict: Check['verdict'], reason?: string): Check => ({
    name,
    verdict,
    ...(reason ? { reason } : {}),
    durationMs: Date.now() - started,
  });
  const direct = executable(path);
  if (!direct && !name.endsWith('.sh')) return done('fail', `${name} is not executable (chmod +x it, or name it *.sh to run it with sh)`);
  const stderr: string[] = [];
  const echo = (into?: string[]) =>
    function* (line: unknown) {
      log(`  [${name}] ${String(line)}`);
      into?.push(String(line));
      yield line;
    };
  checkActGates(); // a lost etcd lease: the recipe's own code acts on the app too
  const result = await timings.outsideOf(() =>
    execa(direct ? path : 'sh', direct ? [] : [path], {
      cwd: dir,
      env,
      // Recipe code from the PR under test gets the contract's variables and nothing of the runner's.
      extendEnv: false,
      stdin: 'ignore',
      stdout: ['pipe', echo()],
      stderr: ['pipe', echo(stderr)],
      timeout: timeoutMs,
      cancelSignal: signal,
      forceKillAfterDelay: 5_000,
      reject: false,
    }),
  );
  signal.throwIfAborted();
  const last = stderr
    .filter((line) => line.trim())
    .at(-1)
    ?.trim();
  if (result.timedOut) return done('fail', `timed out after ${Math.round(timeoutMs / 1000)} s`);
  if (result.exitCode === 0) return done('pass');
  if (result.exitCode === SKIP_EXIT) return done('skip', last ?? 'skipped (no reason given on stderr)');
  if (result.exitCode === undefined) return done('fail', `could not run: ${result.originalMessage ?? result.shortMessage}`);
  return done('fail', `exited ${result.exitCode}${last ? `: ${last}` : ''}`);
}
