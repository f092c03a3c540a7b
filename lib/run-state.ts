// Run-scoped state files: the deploy count, the stages' shared state, and the two dependency files
// handed to recipe hooks and tests through CCCI_*_FILE variables.
//
// They live in `<run dir>/state-<pid>/`, a directory only this user can write to (never the shared
// temp dir, where another local user could plant a symlink for a root run to write through:
// docs/threat-model.md#the-runs-dir). Keyed by run and pid, never by app domain: a second run of
// the same domain runs its preamble before it blocks on the app lock, so domain-keyed files would
// be reset under the live first run. Paths are passed explicitly, never read back from process.env.
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { ensureRunDir } from './abra-dir.js';
import { InputError } from './errors.js';

export interface RunStateFiles {
  /** The directory that holds them: `<run dir>/state-<pid>`. */
  dir: string;
  /** How many deploys this run made (exactly one is allowed). */
  deployCount: string;
  /** JSON the stages share (pre-upgrade identity, backup ids). */
  opState: string;
  /** JSON of dependency credentials for recipe hooks. */
  deps: string;
  /** Appended to by custom tests that skipped for missing deps. */
  depsSkip: string;
}

type StateFile = Exclude<keyof RunStateFiles, 'dir'>;

/** Each file's name in the state dir, and the variable that hands its path to a child. */
const FILES: Record<StateFile, { name: string; variable: string }> = {
  deployCount: { name: 'deploys', variable: 'CCCI_DEPLOY_COUNT_FILE' },
  opState: { name: 'opstate.json', variable: 'CCCI_OP_STATE_FILE' },
  deps: { name: 'deps.json', variable: 'CCCI_DEPS_FILE' },
  depsSkip: { name: 'depskip.txt', variable: 'CCCI_DEPS_SKIP_REPORT' },
};

const STATE_DIR = /^state-(\d+)$/;

/** `<run dir>/state-<pid>/<name>`. */
export function runStatePath(name: string, runDirectory?: string): string {
  if (!/^[a-z][a-z0-9-]*(\.[a-z]+)?$/.test(name)) throw new InputError(`run-state name must be a plain word, got ${JSON.stringify(name)}`);
  return join(runDirectory ?? ensureRunDir(), `state-${process.pid}`, name);
}

/**
 * Creates the run's state files, fresh, in a new `state-<pid>` dir (mode 0700) of the run dir. A
 * dir of that name can only be a dead run's with our pid (the run dir is ours alone): it is replaced.
 */
export function createRunState(runDirectory = ensureRunDir()): RunStateFiles {
  const dir = join(runDirectory, `state-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { mode: 0o700 });
  const path = (file: StateFile): string => join(dir, FILES[file].name);
  const files: RunStateFiles = {
    dir,
    deployCount: path('deployCount'),
    opState: path('opState'),
    deps: path('deps'),
    depsSkip: path('depsSkip'),
  };
  writeFileSync(files.deployCount, '0', { flag: 'wx' });
  writeFileSync(files.opState, '{}', { flag: 'wx' });
  writeFileSync(files.deps, '{}', { flag: 'wx' });
  return files;
}

/** The variables that hand the state files to a child process (`CCCI_OP_STATE_FILE`, ...). */
export function runStateEnv(files: RunStateFiles): Record<string, string> {
  const env: Record<string, string> = {};
  for (const file of Object.keys(FILES) as StateFile[]) env[FILES[file].variable] = files[file];
  return env;
}

/**
 * Writes `path` whole or not at all: a temp file beside it (created exclusively, in a dir only the
 * runner's user can write to), then a rename, so a kill mid-write never leaves a truncated file.
 */
export function writeFileAtomically(path: string, text: string): void {
  const temp = `${path}.${process.pid}.tmp`;
  rmSync(temp, { force: true });
  writeFileSync(temp, text, { flag: 'wx', mode: 0o644 });
  renameSync(temp, path);
}

/** How many deploys the run has made. */
export function deployCount(files: RunStateFiles): number {
  return Number(readFileSync(files.deployCount, 'utf8') || '0');
}

/** Adds one to the run's deploy count; returns the new count. */
export function recordDeploy(files: RunStateFiles): number {
  const count = deployCount(files) + 1;
  writeFileAtomically(files.deployCount, String(count));
  return count;
}

export function readOpState(files: RunStateFiles): Record<string, unknown> {
  return JSON.parse(readFileSync(files.opState, 'utf8')) as Record<string, unknown>;
}

export function writeOpState(files: RunStateFiles, patch: Record<string, unknown>): void {
  writeFileAtomically(files.opState, JSON.stringify({ ...readOpState(files), ...patch }));
}

/** At most this much of the skip report is read: recipe code writes it, the runner only counts it. */
const SKIP_REPORT_MAX_BYTES = 64 * 1024;

/**
 * The lines tests appended to the skip report (CCCI_DEPS_SKIP_REPORT), one per test that skipped
 * for a dependency that is not ready; blank lines are not counted (docs/recipes.md#dependencies).
 */
export function readDepsSkipReport(files: RunStateFiles): string[] {
  let text: string;
  try {
    const fd = openSync(files.depsSkip, 'r');
    try {
      const buffer = Buffer.alloc(SKIP_REPORT_MAX_BYTES);
      text = buffer.toString('utf8', 0, readSync(fd, buffer, 0, buffer.length, 0));
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
}

/** Removes the run's state files (a normal end). */
export function removeRunState(files: RunStateFiles): void {
  rmSync(files.dir, { recursive: true, force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the state dirs that runs of this run id left when their process died (a SIGKILLed run
 * cannot remove its own). Keyed by pid, so a live run's files are never touched; returns the dirs removed.
 */
export function removeStaleRunState(runDirectory = ensureRunDir()): string[] {
  const removed: string[] = [];
  for (const name of readdirSync(runDirectory)) {
    const match = STATE_DIR.exec(name);
    if (!match || Number(match[1]) === process.pid || alive(Number(match[1]))) continue;
    const path = join(runDirectory, name);
    rmSync(path, { recursive: true, force: true });
    removed.push(path);
  }
  return removed;
}
