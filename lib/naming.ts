// Names: the run-app domain derived from (recipe, PR, ref), the swarm stack abra deploys it as, the
// pattern that tells a run app from a warm/canonical one, the way back from a docker service name
// to its domain, and the validators every boundary uses.
//
// Guarantees: every name this module builds passes its own validator; a warm/canonical app never
// matches the run-app pattern; the reverse map only answers for names the forward map can produce.
// Builtins through process.getBuiltinModule, not an ESM import: the import builds a facade that
// reads every export, a start-up cost every command pays (bench/README.md, `npm run bench cli`);
// node:crypto is taken where a domain is hashed, not at start-up.
const { isAbsolute } = process.getBuiltinModule('node:path');

import { InputError, show } from './errors.js';

export const DEFAULT_BASE_DOMAIN = 'ci.commoninternet.net';

/** abra trims a sanitised app name (its stack name) to this many characters. */
export const MAX_STACK_NAME_LENGTH = 45;

/** `dir`, the value of `variable`, if it is an absolute path; else an InputError naming both. */
export function absoluteDir(variable: string, dir: string): string {
  if (!isAbsolute(dir)) throw new InputError(`${variable} must be an absolute path, got ${JSON.stringify(dir)}`);
  return dir;
}

/** `CCCI_BASE_DOMAIN`, read at call time; default `ci.commoninternet.net`. */
export function baseDomain(): string {
  const base = process.env.CCCI_BASE_DOMAIN || DEFAULT_BASE_DOMAIN;
  assertDomain(base, 'CCCI_BASE_DOMAIN');
  return base;
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * A DNS name in the form a lockfile may be named after: non-empty, at most 253 characters, lower
 * case, no `/`, no `..`, labels of 1-63 letters, digits and inner hyphens. `what` names the input
 * in the error.
 */
export function assertDomain(domain: unknown, what = 'domain'): asserts domain is string {
  const shown = show(domain);
  if (typeof domain !== 'string' || domain.length === 0) throw new InputError(`${what} must be a non-empty string, got ${shown}`);
  if (domain.length > 253) throw new InputError(`${what} is ${domain.length} characters long (at most 253): ${shown}`);
  if (domain.includes('/') || domain.includes('\0')) throw new InputError(`${what} must not contain '/' or NUL: ${shown}`);
  if (domain.includes('..')) throw new InputError(`${what} must not contain '..': ${shown}`);
  if (domain !== domain.toLowerCase()) throw new InputError(`${what} must be lower case: ${shown}`);
  if (!domain.split('.').every((label) => LABEL.test(label))) {
    throw new InputError(`${what} is not a valid DNS name (labels of 1-63 a-z, 0-9 and inner '-'): ${shown}`);
  }
}

/**
 * A recipe name as abra knows it: 1-100 of a-z, 0-9, `-` and `_`, starting with a letter or digit.
 * `what` names the input in the error (`RECIPE`, `--recipe`).
 */
export function assertRecipe(recipe: unknown, what = 'recipe name'): asserts recipe is string {
  const shown = show(recipe);
  if (typeof recipe !== 'string' || !/^[a-z0-9][a-z0-9_-]{0,99}$/.test(recipe)) {
    throw new InputError(`${what} must be 1-100 characters of a-z, 0-9, '-' and '_' (no path characters): ${shown}`);
  }
}

/**
 * `<recipe[:4]>-<sha1("recipe|pr|ref")[:6]>.<base>`: stable per (recipe, PR, ref), and the same
 * name the Python runner derives. A `-` or `_` among the recipe's first four characters is dropped
 * from the prefix (the Python runner kept it, making a domain its own janitor could never match).
 */
export function appDomain(recipe: string, pr: string | number, ref: string): string {
  assertRecipe(recipe);
  if (typeof pr === 'number' ? !Number.isSafeInteger(pr) || pr < 0 : typeof pr !== 'string') {
    throw new InputError(`PR must be a PR number or a string, got ${show(pr)}`);
  }
  if (typeof ref !== 'string') throw new InputError(`ref must be a string, got ${show(ref)}`);
  const digest = process.getBuiltinModule('node:crypto').createHash('sha1').update(`${recipe}|${pr}|${ref}`).digest('hex');
  const prefix = recipe.slice(0, 4).replace(/[^a-z0-9]/g, '');
  const domain = `${prefix}-${digest.slice(0, 6)}.${baseDomain()}`;
  assertDomain(domain, 'app domain (CCCI_BASE_DOMAIN too long?)');
  return domain;
}

/**
 * The domain of the dependency `dep` of the run app `app`: `<first 4 of dep's a-z0-9>-<sha1("app|dep")[:6]>.<base>`.
 * A run-app name, so the janitor reaps a dead run's dependencies like its app; derived from the
 * app's domain, so two runs of one recipe never share one (docs/recipes.md#dependencies).
 */
export function depDomain(app: string, dep: string): string {
  assertDomain(app, 'app domain');
  assertRecipe(dep, 'dependency recipe');
  const digest = process.getBuiltinModule('node:crypto').createHash('sha1').update(`${app}|${dep}`).digest('hex');
  const domain = `${dep.replace(/[^a-z0-9]/g, '').slice(0, 4)}-${digest.slice(0, 6)}.${baseDomain()}`;
  assertDomain(domain, 'dependency domain (CCCI_BASE_DOMAIN too long?)');
  return domain;
}

/** The swarm stack abra deploys a domain as: dots become underscores, trimmed to 45 characters as abra does. */
export function stackName(domain: string): string {
  assertDomain(domain);
  return domain.replaceAll('.', '_').slice(0, MAX_STACK_NAME_LENGTH);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

let cachedPattern: { base: string; pattern: RegExp } | undefined;

/** `^[a-z0-9]{1,4}-[0-9a-f]{6}\.<base>$`: run apps only; warm/canonical apps never match. */
export function runAppPattern(base = baseDomain()): RegExp {
  if (cachedPattern?.base !== base) {
    cachedPattern = { base, pattern: new RegExp(`^[a-z0-9]{1,4}-[0-9a-f]{6}\\.${escapeRegExp(base)}$`) };
  }
  return cachedPattern.pattern;
}

/** Whether `domain` is a run app's (as opposed to a warm/canonical app's). */
export function isRunApp(domain: string, base = baseDomain()): boolean {
  return runAppPattern(base).test(domain);
}

const RUN_APP_HEAD = /^([a-z0-9]{1,4}-[0-9a-f]{6})_/;

/**
 * The run-app domain a docker service (`<stack>_<service>`) belongs to, or null when the service is
 * not a run app's. Exact inverse of {@link stackName} for run apps, trimming included.
 */
export function domainFromServiceName(service: string, base = baseDomain()): string | null {
  const head = RUN_APP_HEAD.exec(service);
  if (!head) return null;
  const domain = `${head[1]}.${base}`;
  const stack = stackName(domain);
  return service.length > stack.length + 1 && service.startsWith(stack) && service[stack.length] === '_' ? domain : null;
}
