// Run-scoped state files, handed to stage children through CCCI_*_FILE variables.
//
// Keyed by run id + pid, never by app domain: a second run of the same domain runs its preamble
// before it blocks on the app lock, so domain-keyed files would be reset under the live first run.
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { runId } from './abra-dir.js';
import { InputError } from './naming.js';

/** `<tmpdir>/ccci-<name>-<run-id>-<pid>`. */
export function runStatePath(name: string): string {
  if (!/^[a-z][a-z0-9-]*(\.[a-z]+)?$/.test(name)) throw new InputError(`run-state name must be a plain word, got ${JSON.stringify(name)}`);
  return join(tmpdir(), `ccci-${name}-${runId()}-${process.pid}`);
}

export interface RunStateFiles {
  /** How many deploys this run made (exactly one is allowed). */
  deployCount: string;
  /** JSON the stages share (pre-upgrade identity, backup ids). */
  opState: string;
  /** JSON of dependency credentials for recipe hooks. */
  deps: string;
  /** Appended to by custom tests that skipped for missing deps. */
  depsSkip: string;
}

const ENV: Record<keyof RunStateFiles, string> = {
  deployCount: 'CCCI_DEPLOY_COUNT_FILE',
  opState: 'CCCI_OP_STATE_FILE',
  deps: 'CCCI_DEPS_FILE',
  depsSkip: 'CCCI_DEPS_SKIP_REPORT',
};

/** Each file's name in runStatePath(): also how removeStaleRunState() recognises them. */
const NAMES: Record<keyof RunStateFiles, string> = {
  deployCount: 'deploys',
  opState: 'opstate.json',
  deps: 'deps.json',
  depsSkip: 'depskip.txt',
};

/** Creates the run's state files, fresh, and exports their paths for child processes. */
export function createRunState(): RunStateFiles {
  const files: RunStateFiles = {
    deployCount: runStatePath(NAMES.deployCount),
    opState: runStatePath(NAMES.opState),
    deps: runStatePath(NAMES.deps),
    depsSkip: runStatePath(NAMES.depsSkip),
  };
  writeFileSync(files.deployCount, '0');
  writeFileSync(files.opState, '{}');
  writeFileSync(files.deps, '{}');
  rmSync(files.depsSkip, { force: true });
  for (const key of Object.keys(ENV) as (keyof RunStateFiles)[]) process.env[ENV[key]] = files[key];
  return files;
}

/** Adds one to the run's deploy count (the file named by CCCI_DEPLOY_COUNT_FILE); returns the new count. */
export function recordDeploy(): number {
  const path = process.env.CCCI_DEPLOY_COUNT_FILE;
  if (!path) throw new Error('CCCI_DEPLOY_COUNT_FILE is not set: createRunState() first');
  const count = Number(readFileSync(path, 'utf8') || '0') + 1;
  writeFileSync(path, String(count));
  return count;
}

export function readOpState(): Record<string, unknown> {
  const path = process.env.CCCI_OP_STATE_FILE;
  return path ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>) : {};
}

export function writeOpState(patch: Record<string, unknown>): void {
  const path = process.env.CCCI_OP_STATE_FILE;
  if (!path) throw new Error('CCCI_OP_STATE_FILE is not set: createRunState() first');
  writeFileSync(path, JSON.stringify({ ...readOpState(), ...patch }));
}

/** Removes the run's state files (a normal end). */
export function removeRunState(files: RunStateFiles): void {
  for (const path of Object.values(files)) rmSync(path, { force: true });
}

const STATE_FILE = new RegExp(`^ccci-(?:${Object.values(NAMES).map((name) => name.replace('.', '\\.')).join('|')})-.+-(\\d+)$`);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the state files of runs whose process is gone (a SIGKILLed run cannot remove its own).
 * Keyed by pid, so a live run's files are never touched; returns the paths removed.
 */
export function removeStaleRunState(): string[] {
  const removed: string[] = [];
  for (const name of readdirSync(tmpdir())) {
    const match = STATE_FILE.exec(name);
    if (!match || alive(Number(match[1]))) continue;
    const path = join(tmpdir(), name);
    rmSync(path, { force: true });
    removed.push(path);
  }
  return removed;
}
