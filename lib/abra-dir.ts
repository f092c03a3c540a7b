// Where abra keeps its state, and the per-run ABRA_DIR that isolates each run's recipe trees.
//
// A run gets `<runs>/<run-id>/abra/` with `servers/` and `catalogue/` symlinked to the canonical
// `~/.abra` (app .env files stay where every tool and the janitor look for them) and a fresh
// `recipes/` of its own: two runs of one recipe never share a working tree, so no lock is needed.
import { lstatSync, mkdirSync, readlinkSync, statSync, symlinkSync, type Stats } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

import { InputError } from './errors.js';
import { absoluteDir, assertRecipe } from './naming.js';

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

/** The runs dir's subdir of warm app recovery records: no run id may take its name. */
const WARM_DIR = 'warm';

/** `CCCI_RUN_ID`, else `DRONE_BUILD_NUMBER`, else `manual-<pid>` (two hand runs never share). */
export function runId(): string {
  const variable = process.env.CCCI_RUN_ID ? 'CCCI_RUN_ID' : process.env.DRONE_BUILD_NUMBER ? 'DRONE_BUILD_NUMBER' : 'run id';
  const id = process.env.CCCI_RUN_ID || process.env.DRONE_BUILD_NUMBER || `manual-${process.pid}`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(id) || id.includes('..')) {
    throw new InputError(`${variable} (the run id) must be 1-128 characters of A-Z, a-z, 0-9, '.', '_' and '-': ${JSON.stringify(id)}`);
  }
  if (id === WARM_DIR)
    throw new InputError(`${variable} (the run id) must not be ${JSON.stringify(WARM_DIR)}: the runs dir keeps warm app records there`);
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

/** `<runs>/<run-id>`: the run's artifacts (log, results.json, abra dir, state). */
export function runDir(): string {
  return join(runsDir(), runId());
}

/**
 * Creates the run dir, `<runs>/<run-id>`, mode 0700, and checks that only this user can write to it
 * or to the runs dir above it: everything a run writes (state, results, log, snapshots) lives
 * there, so a path another local user could have planted is never written through or followed.
 * docs/threat-model.md#the-runs-dir
 */
export function ensureRunDir(): string {
  const runs = runsDir();
  makeDir(runs, 'runs dir', 'CCCI_RUNS_DIR', 0o755);
  checkRunsDir();
  const dir = join(runs, runId());
  makeDir(dir, 'run dir', 'CCCI_RUNS_DIR', 0o700);
  assertTrustedDir(dir, 'run dir', RUN_DIR_RULE);
  return dir;
}

/**
 * `<runs dir>/warm`, mode 0700, this user's alone: where a quick run keeps the recovery record of
 * the warm app it upgrades (docs/recipes.md#the-quick-lane). Checked as the run dir is.
 */
export function ensureWarmDir(): string {
  const runs = runsDir();
  makeDir(runs, 'runs dir', 'CCCI_RUNS_DIR', 0o755);
  checkRunsDir();
  const dir = join(runs, WARM_DIR);
  makeDir(dir, 'warm record dir', 'CCCI_RUNS_DIR', 0o700);
  assertTrustedDir(dir, 'warm record dir', RUN_DIR_RULE);
  return dir;
}

/**
 * The runs dir's rules of {@link ensureRunDir}, creating nothing: throws its InputError for a runs
 * dir that is not a directory, is owned by neither this user nor root (a symlink too), or others
 * may write to without the sticky bit, or is missing. Returns the runs dir.
 */
export function checkRunsDir(): string {
  const runs = runsDir();
  assertTrustedDir(runs, 'runs dir', RUNS_DIR_RULE);
  return runs;
}

/** Who may own a dir cc-ci writes in, and what else it tolerates there. */
export interface DirRule {
  owners: 'us' | 'us-or-root';
  /** Whether a dir others may write to passes when its sticky bit is set. */
  sticky: boolean;
  /** Whether a symlink to a dir passes (when the symlink itself is owned as `owners` says). */
  symlink: boolean;
  /** The flag or variable that chose the dir, named in the error. */
  setting: string;
  code: string;
}

const RUNS_DIR_RULE: DirRule = { owners: 'us-or-root', sticky: true, symlink: true, setting: 'CCCI_RUNS_DIR', code: 'ERR_CCCI_RUNS_DIR' };
const RUN_DIR_RULE: DirRule = { owners: 'us', sticky: false, symlink: false, setting: 'CCCI_RUNS_DIR', code: 'ERR_CCCI_RUNS_DIR' };

/**
 * Refuses, with an InputError naming `rule.setting`, a dir that another local user could have
 * planted or could write to: missing, not a directory, a symlink the rule does not allow, owned by
 * someone else, or writable by others (unless the rule allows a sticky one).
 * docs/threat-model.md#the-runs-dir
 */
export function assertTrustedDir(path: string, what: string, rule: DirRule): void {
  const euid = process.geteuid?.() ?? 0;
  const ownedWell = (stat: Stats): boolean => stat.uid === euid || (rule.owners === 'us-or-root' && stat.uid === 0);
  const refuse = (why: string): never => {
    throw new InputError(`${what} ${path} ${why} (${rule.setting}): refusing to write there`, { code: rule.code, path });
  };
  let link: Stats;
  try {
    link = lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') refuse('does not exist');
    throw error;
  }
  if (link.isSymbolicLink() && (!rule.symlink || !ownedWell(link))) refuse(`is a symlink owned by uid ${link.uid}`);
  const stat = link.isSymbolicLink() ? statSync(path) : link;
  if (!stat.isDirectory()) refuse('is not a directory');
  if (!ownedWell(stat)) refuse(`is owned by uid ${stat.uid}, not by this process's uid ${euid}`);
  const othersWrite = (stat.mode & 0o022) !== 0;
  if (othersWrite && !(rule.sticky && (stat.mode & 0o1000) !== 0))
    refuse(`is writable by others (mode ${(stat.mode & 0o7777).toString(8)})`);
}

function makeDir(path: string, what: string, variable: string, mode = 0o755): void {
  try {
    mkdirSync(path, { recursive: true, mode });
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    throw new InputError(`${what} ${path} cannot be created (${variable}): ${e.message || e.code}`, { code: e.code, path, cause: e });
  }
}

/**
 * Builds this run's abra dir and exports it as `ABRA_DIR` (call before the first abra call).
 * Idempotent; refuses a pre-existing `servers/` or `catalogue/` that is not a symlink to the
 * canonical dir (a run must never write app configs somewhere the janitor cannot see).
 */
export function setupRunAbraDir(log: (line: string) => void = () => {}): string {
  const canonical = canonicalAbraDir();
  const dir = join(ensureRunDir(), 'abra');
  makeDir(join(dir, 'recipes'), 'run dir', 'CCCI_RUNS_DIR');
  for (const shared of ['servers', 'catalogue']) {
    const target = join(canonical, shared);
    makeDir(target, 'canonical abra dir', 'HOME');
    const link = join(dir, shared);
    let existing: string | null = null;
    try {
      if (!lstatSync(link).isSymbolicLink())
        throw new InputError(`per-run ${link} is not a symlink to ${target}: refusing to use it (CCCI_RUNS_DIR)`, {
          code: 'ERR_CCCI_RUNS_DIR',
          path: link,
        });
      existing = readlinkSync(link);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (existing === null) symlinkSync(target, link);
    else if (existing !== target) {
      throw new InputError(`per-run ${link} points to ${existing}, not ${target}: refusing to use it (CCCI_RUNS_DIR)`, {
        code: 'ERR_CCCI_RUNS_DIR',
        path: link,
      });
    }
  }
  process.env.ABRA_DIR = dir;
  log(`== per-run ABRA_DIR: ${dir} (servers/, catalogue/ -> ${canonical}; fresh recipes/) ==`);
  return dir;
}
