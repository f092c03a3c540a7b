// The recipe under test: fetching it into the run's own tree, its published versions, what it
// declares (secrets, backups), and the snapshot of its own tests taken at fetch time.
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { canonicalAbraDir, recipeDir } from '../../lib/abra-dir.js';
import { InputError } from '../../lib/errors.js';
import type { Abra } from '../host/abra.js';
import { exec } from '../host/exec.js';
import type { Log } from '../host/log.js';
import { readEnvFile, readRecipe } from './recipe-files.js';

export interface FetchOptions {
  recipe: string;
  /** With `src`: the PR head to clone (a commit, branch or ref). */
  ref?: string;
  /** `owner/repo` of the PR's repository under `gitBase`. */
  src?: string;
  gitBase: string;
  /** Sent as an HTTP header through git's environment: never in argv, never written to .git/config. */
  token?: string;
  abra: Abra;
  log: Log;
  signal?: AbortSignal;
}

/** Makes the recipe available at the code under test in this run's own recipe tree. */
export async function fetchRecipe(options: FetchOptions): Promise<string> {
  const { recipe, ref, src, log, signal } = options;
  const dest = recipeDir(recipe);
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dirname(dest), { recursive: true });

  if (process.env.CCCI_SKIP_FETCH === '1') {
    const staged = join(canonicalAbraDir(), 'recipes', recipe);
    if (!existsSync(staged)) throw new InputError(`CCCI_SKIP_FETCH=1 but there is no staged clone at ${staged}`);
    cpSync(staged, dest, { recursive: true, verbatimSymlinks: true });
    log(`[fetch] CCCI_SKIP_FETCH=1 — copied the staged clone ${staged} into this run's tree`);
    return dest;
  }
  if (src && ref) {
    const url = `${options.gitBase}/${src}.git`;
    const env = options.token
      ? { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'http.extraHeader', GIT_CONFIG_VALUE_0: `Authorization: token ${options.token}` }
      : {};
    const git = (args: string[]) => exec('git', args, { env, signal, log, tag: '[git]', timeoutMs: 600_000 });
    log(`[fetch] cloning ${url} at ${ref}`);
    await git(['clone', '--quiet', url, dest]);
    await git(['-C', dest, 'fetch', '--quiet', '--tags', 'origin', ref]);
    await git(['-C', dest, 'checkout', '--quiet', '--force', 'FETCH_HEAD']);
    return dest;
  }
  await options.abra.recipeFetch(recipe);
  return dest;
}

async function git(dir: string, args: string[]): Promise<string> {
  return (await exec('git', ['-C', dir, ...args])).stdout.trim();
}

export async function headCommit(dir: string): Promise<string> {
  return git(dir, ['rev-parse', 'HEAD']);
}

/** Checks the tree out at `ref`, exactly (untracked overlays of another version must not survive). */
export async function checkout(dir: string, ref: string): Promise<void> {
  await git(dir, ['checkout', '--quiet', '--force', ref]);
}

/** Removes every file the tree's checkout does not have (a hook's overlays): abra deploys a version only from a clean tree. */
export async function cleanTree(dir: string): Promise<void> {
  await git(dir, ['clean', '-ffdxq']);
}

/**
 * What the tree has besides its checkout: the paths `git status --porcelain` lists (the overlays a
 * hook copied in, say). abra deploys a tagged version only from a tree without any.
 */
export async function treeChanges(dir: string): Promise<string[]> {
  const status = (await exec('git', ['-C', dir, 'status', '--porcelain'])).stdout;
  return status
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => line.slice(3));
}

/** The recipe's published versions (its tags), oldest first. */
export async function publishedVersions(dir: string): Promise<string[]> {
  return (await git(dir, ['tag', '--sort=v:refname'])).split('\n').filter(Boolean);
}

/**
 * The published version to upgrade from: the newest tag, or the one before it when the code
 * under test is that newest tag itself. Null when there is none.
 */
export async function previousVersion(dir: string, head: string): Promise<string | null> {
  const tags = await publishedVersions(dir);
  if (tags.length === 0) return null;
  const newest = tags[tags.length - 1]!;
  const newestCommit = await git(dir, ['rev-list', '-n', '1', newest]);
  if (newestCommit !== head) return newest;
  return tags.length > 1 ? tags[tags.length - 2]! : null;
}

/**
 * The recipe declares docker secrets (abra generates them at `app new --secrets`): its .env.sample
 * has SECRET_*_VERSION keys, or its compose files declare secrets.
 */
export function declaresSecrets(dir: string): boolean {
  return readRecipe(dir).declaresSecrets;
}

/**
 * The recipe opts in to backups: some service's deploy.labels has `backupbot.backup: true`, in the
 * compose files the app's `.env` (`envFile`) names, interpolated from it.
 */
export function backupCapable(dir: string, envFile?: string): boolean {
  return readRecipe(dir, envFile !== undefined && existsSync(envFile) ? readEnvFile(envFile) : undefined).backupCapable;
}
