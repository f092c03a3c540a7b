// Names: the run-app domain derived from (recipe, PR, ref), its swarm stack name, the pattern that
// tells a run app from a warm/canonical one, and the validators every boundary uses.
import { createHash } from 'node:crypto';

export const DEFAULT_BASE_DOMAIN = 'ci.commoninternet.net';

/** A bad input at a boundary: the message names the input; the CLI exits 2 on it. */
export class InputError extends Error {
  readonly code = 'ERR_CCCI_INPUT';
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

/** `CCCI_BASE_DOMAIN`, read at call time. */
export function baseDomain(): string {
  const base = process.env.CCCI_BASE_DOMAIN || DEFAULT_BASE_DOMAIN;
  assertDomain(base, 'CCCI_BASE_DOMAIN');
  return base;
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * A DNS name in the form a lockfile may be named after: lower case, no `/`, no `..`, at most 253
 * characters, labels of letters, digits and inner hyphens.
 */
export function assertDomain(domain: unknown, what = 'domain'): asserts domain is string {
  const shown = JSON.stringify(domain);
  if (typeof domain !== 'string' || domain.length === 0) throw new InputError(`${what} must be a non-empty string, got ${shown}`);
  if (domain.length > 253) throw new InputError(`${what} is ${domain.length} characters long (at most 253): ${shown}`);
  if (domain.includes('/') || domain.includes('\0')) throw new InputError(`${what} must not contain '/' or NUL: ${shown}`);
  if (domain.includes('..')) throw new InputError(`${what} must not contain '..': ${shown}`);
  if (domain !== domain.toLowerCase()) throw new InputError(`${what} must be lower case: ${shown}`);
  if (!domain.split('.').every((label) => LABEL.test(label))) {
    throw new InputError(`${what} is not a valid DNS name (labels of a-z, 0-9 and inner '-'): ${shown}`);
  }
}

/** A recipe name as abra knows it: lower case letters, digits, `-` and `_`, no path characters. */
export function assertRecipe(recipe: unknown): asserts recipe is string {
  const shown = JSON.stringify(recipe);
  if (typeof recipe !== 'string' || !/^[a-z0-9][a-z0-9_-]{0,99}$/.test(recipe)) {
    throw new InputError(`recipe name must be 1-100 characters of a-z, 0-9, '-' and '_' (no path characters): ${shown}`);
  }
}

/** `<recipe[:4]>-<sha1("recipe|pr|ref")[:6]>.<base>`: stable per (recipe, PR, ref). */
export function appDomain(recipe: string, pr: string | number, ref: string): string {
  assertRecipe(recipe);
  const digest = createHash('sha1').update(`${recipe}|${pr}|${ref}`).digest('hex');
  const prefix = recipe.slice(0, 4).replace(/[^a-z0-9]/g, '0');
  return `${prefix}-${digest.slice(0, 6)}.${baseDomain()}`;
}

/** The swarm stack abra deploys a domain as: dots become underscores. */
export function stackName(domain: string): string {
  return domain.replaceAll('.', '_');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** `^[a-z0-9]{1,4}-[0-9a-f]{6}\.<base>$`: run apps only; warm/canonical apps never match. */
export function runAppPattern(base = baseDomain()): RegExp {
  return new RegExp(`^[a-z0-9]{1,4}-[0-9a-f]{6}\\.${escapeRegExp(base)}$`);
}

export function isRunApp(domain: string, base = baseDomain()): boolean {
  return runAppPattern(base).test(domain);
}

/**
 * The run-app domain a docker service (`<stack>_<service>`) belongs to, or null when the service is
 * not a run app's. The stack of a run app is `<prefix>-<hex6>_<base with _ for .>`.
 */
export function domainFromServiceName(service: string, base = baseDomain()): string | null {
  const stackOfBase = stackName(base);
  const match = new RegExp(`^([a-z0-9]{1,4}-[0-9a-f]{6})_${escapeRegExp(stackOfBase)}_[^\\s]+$`).exec(service);
  return match ? `${match[1]}.${base}` : null;
}
