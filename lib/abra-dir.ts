// Where abra keeps its state, and the per-run ABRA_DIR that isolates each run's recipe trees.
//
// A run gets `<runs>/<run-id>/abra/` with `servers/` and `catalogue/` symlinked to the canonical
// `~/.abra` (app .env files stay where every tool and the janitor look for them) and a fresh
// `recipes/` of its own: two runs of one recipe never share a working tree, so no lock is needed.
import { lstatSync, mkdirSync, readlinkSync, symlinkSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

import { InputError, absoluteDir, assertRecipe } from './naming.js';

export const DEFAULT_RUNS_DIR = '/var/lib/cc-ci-runs';

/** The canonical abra state dir, `~/.abra`, whatever ABRA_DIR says. */
export function canonicalAbraDir(): string {
  return join(homedir(), '.abra');
}

/** abra's state dir as the abra CLI resolves it: `$ABRA_DIR`, else `~/.abra`. */
export function abraDir(): string {
  return process.env.ABRA_DIR || canonicalAbraDir();
}

/** The working tree of `recipe` in the current abra dir (per-run inside a run). */
export function recipeDir(recipe: string): string {
  assertRecipe(recipe);
  return join(abraDir(), 'recipes', recipe);
}

/** `CCCI_RUN_ID`, else `DRONE_BUILD_NUMBER`, else `manual-<pid>` (two hand runs never share). */
export function runId(): string {
  const id = process.env.CCCI_RUN_ID || process.env.DRONE_BUILD_NUMBER || `manual-${process.pid}`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(id) || id.includes('..')) {
    throw new InputError(`run id must be 1-128 characters of A-Z, a-z, 0-9, '.', '_' and '-': ${JSON.stringify(id)}`);
  }
  return id;
}

/**
 * `CCCI_RUNS_DIR`, default `/var/lib/cc-ci-runs`. Must be absolute: the run exports ABRA_DIR below
 * it, and children that run elsewhere (the custom stage runs in the recipe's tests/) would resolve
 * a relative one somewhere else.
 */
export function runsDir(): string {
  return absoluteDir('CCCI_RUNS_DIR', process.env.CCCI_RUNS_DIR || DEFAULT_RUNS_DIR);
}

/** `<runs>/<run-id>`: the run's artifacts (log, results.json, abra dir). */
export function runDir(): string {
  return join(runsDir(), runId());
}

function makeDir(path: string, what: string): void {
  try {
    mkdirSync(path, { recursive: true });
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    throw new InputError(`${what} ${path} cannot be created: ${e.message || e.code}`);
  }
}

/**
 * Builds this run's abra dir and exports it as `ABRA_DIR` (call before the first abra call).
 * Idempotent; refuses a pre-existing `servers/` or `catalogue/` that is not a symlink to the
 * canonical dir (a run must never write app configs somewhere the janitor cannot see).
 */
export function setupRunAbraDir(log: (line: string) => void = () => {}): string {
  const canonical = canonicalAbraDir();
  const dir = join(runDir(), 'abra');
  makeDir(join(dir, 'recipes'), 'runs dir');
  for (const shared of ['servers', 'catalogue']) {
    const target = join(canonical, shared);
    makeDir(target, 'canonical abra dir');
    const link = join(dir, shared);
    let existing: string | null = null;
    try {
      if (!lstatSync(link).isSymbolicLink()) throw new InputError(`per-run ${link} is not a symlink to ${target}: refusing to use it`);
      existing = readlinkSync(link);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (existing === null) symlinkSync(target, link);
    else if (existing !== target) {
      throw new InputError(`per-run ${link} points to ${existing}, not ${target}: refusing to use it`);
    }
  }
  process.env.ABRA_DIR = dir;
  log(`== per-run ABRA_DIR: ${dir} (servers/, catalogue/ -> ${canonical}; fresh recipes/) ==`);
  return dir;
}
