// The run's configuration, from the environment (as the Drone step sets it) with flags on top.
// Every value is validated here, at the boundary: a bad one is an InputError naming it (exit 2).
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { InputError } from '../../lib/errors.js';
import { type EtcdSettings, etcdSettings, lockBackendName } from '../../lib/lock-backend.js';
import { absoluteDir, assertRecipe } from '../../lib/naming.js';
import { abraServer } from '../host/abra.js';
import { DEFAULT_MAX_DEPS } from './contract.js';
import { parseIngress, type IngressConfig } from './health.js';
import { DEFAULT_TESTS_DIR } from './recipe-tests.js';
import { STAGES, type StageName } from './stages.js';
import { parseWarmApps } from '../warm.js';

export interface RunConfig {
  recipe: string;
  /** The PR head (commit, branch or ref) under test; null tests the recipe's catalogue version. */
  ref: string | null;
  pr: string;
  /** `owner/repo` to clone the PR head from; null fetches through abra. */
  src: string | null;
  stages: StageName[];
  gitBase: string;
  token: string | undefined;
  server: string;
  convergeTimeoutMs: number;
  /** CCCI_INGRESS, CCCI_INGRESS_CA and CCCI_HEALTH. */
  ingress: IngressConfig;
  /** The operator's tests for this recipe: `$CCCI_TESTS_DIR/<recipe>`. */
  operatorTests: string;
  testTimeoutMs: number;
  /** CCCI_MAX_DEPS: how many dependencies a ccci.yml may declare. */
  maxDeps: number;
  /** CCCI_QUICK=1 or --quick: upgrade the recipe's warm app in place instead of a cold deploy. */
  quick: boolean;
  /** CCCI_WARM_APPS: the warm apps the quick lane looks for the recipe's among. */
  warmApps: string[];
  /** The etcd lock's settings with CCCI_LOCK_BACKEND=etcd, else null (flock). */
  lockBackend: EtcdSettings | null;
}

function parseStages(text: string, what: string): StageName[] {
  const names = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) throw new InputError(`${what} must name at least one of ${STAGES.join(',')}, got ${JSON.stringify(text)}`);
  for (const name of names) {
    if (!(STAGES as readonly string[]).includes(name)) {
      throw new InputError(`${what}: unknown stage ${JSON.stringify(name)} (known: ${STAGES.join(',')})`);
    }
  }
  return STAGES.filter((stage) => names.includes(stage));
}

/** `CCCI_GIT_BASE`: an absolute http(s), ssh, git or file URL; trailing slashes dropped. */
function parseGitBase(text: string): string {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (url === undefined || !['https:', 'http:', 'ssh:', 'git:', 'file:'].includes(url.protocol) || /[\s\0]/.test(text)) {
    throw new InputError(
      `CCCI_GIT_BASE must be an http(s), ssh, git or file URL such as https://git.autonomic.zone, got ${JSON.stringify(text)}`,
    );
  }
  return text.replace(/\/+$/, '');
}

function positiveInt(name: string, text: string): number {
  if (!/^[1-9][0-9]{0,6}$/.test(text)) throw new InputError(`${name} must be a whole number of seconds, got ${JSON.stringify(text)}`);
  return Number(text);
}

/** `CCCI_CONVERGE_TIMEOUT_SECONDS` (default 600) in ms: how long services may take to converge. */
export function convergeTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  return positiveInt('CCCI_CONVERGE_TIMEOUT_SECONDS', env.CCCI_CONVERGE_TIMEOUT_SECONDS ?? '600') * 1000;
}

/** `CCCI_MAX_DEPS`: 0 (no dependencies allowed) to 50. */
function maxDeps(text: string): number {
  if (!/^[0-9]{1,2}$/.test(text) || Number(text) > 50)
    throw new InputError(`CCCI_MAX_DEPS must be a whole number from 0 to 50, got ${JSON.stringify(text)}`);
  return Number(text);
}

/** `CCCI_QUICK`: `1` the quick lane, `0` or unset not. */
function quickLane(env: NodeJS.ProcessEnv): boolean {
  const text = env.CCCI_QUICK ?? '';
  if (!['', '0', '1'].includes(text)) throw new InputError(`CCCI_QUICK must be 1 (the quick lane) or 0, got ${JSON.stringify(text)}`);
  return text === '1';
}

/** `CCCI_GIT_TOKEN`, or undefined. Sent as an HTTP header: a line break would end the header early. Never shown: it is a secret. */
function gitToken(env: NodeJS.ProcessEnv): string | undefined {
  const token = env.CCCI_GIT_TOKEN || undefined;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this check looks for
  if (token !== undefined && /[\0-\x1f\x7f]/.test(token)) {
    throw new InputError('CCCI_GIT_TOKEN contains a control character (line break, tab, NUL, ...); its value is not shown');
  }
  return token;
}

/**
 * The run's settings that come from the environment alone (no RECIPE, no flag), each with the
 * variables it reads, in the order parseRunConfig checks them. Each parser throws the InputError
 * a run would stop with, so `cc-ci doctor` checks every one by itself with the run's own rules.
 * (A function, not a constant: tests/docs/help-env.test.ts counts what a module's load reads.)
 */
export const ETCD_VARIABLES = [
  'CCCI_LOCK_BACKEND',
  'CCCI_ETCD_ENDPOINTS',
  'CCCI_ETCD_CA',
  'CCCI_ETCD_CERT',
  'CCCI_ETCD_KEY',
  'CCCI_ETCD_LEASE_SECONDS',
  'CCCI_ETCD_RENEW_SECONDS',
  'CCCI_ETCD_ABORT_SECONDS',
  'CCCI_HOST_ID',
];

export function envSettings() {
  return {
    quick: { variables: ['CCCI_QUICK'], parse: quickLane },
    gitBase: {
      variables: ['CCCI_GIT_BASE'],
      parse: (env: NodeJS.ProcessEnv) => parseGitBase(env.CCCI_GIT_BASE || 'https://git.autonomic.zone'),
    },
    token: { variables: ['CCCI_GIT_TOKEN'], parse: gitToken },
    server: { variables: ['CCCI_SERVER'], parse: abraServer },
    convergeTimeoutMs: { variables: ['CCCI_CONVERGE_TIMEOUT_SECONDS'], parse: convergeTimeoutMs },
    ingress: { variables: ['CCCI_INGRESS', 'CCCI_INGRESS_CA', 'CCCI_HEALTH'], parse: parseIngress },
    testsDir: {
      variables: ['CCCI_TESTS_DIR'],
      parse: (env: NodeJS.ProcessEnv) => absoluteDir('CCCI_TESTS_DIR', env.CCCI_TESTS_DIR || DEFAULT_TESTS_DIR),
    },
    testTimeoutMs: {
      variables: ['CCCI_TEST_TIMEOUT_SECONDS'],
      parse: (env: NodeJS.ProcessEnv) => positiveInt('CCCI_TEST_TIMEOUT_SECONDS', env.CCCI_TEST_TIMEOUT_SECONDS ?? '900') * 1000,
    },
    maxDeps: { variables: ['CCCI_MAX_DEPS'], parse: (env: NodeJS.ProcessEnv) => maxDeps(env.CCCI_MAX_DEPS ?? String(DEFAULT_MAX_DEPS)) },
    warmApps: {
      variables: ['CCCI_WARM_APPS'],
      parse: (env: NodeJS.ProcessEnv) => (env.CCCI_WARM_APPS ? parseWarmApps(env.CCCI_WARM_APPS) : []),
    },
    lockBackend: {
      variables: ETCD_VARIABLES,
      // The backend's settings, checked before the run takes anything (lib/lock-backend.ts).
      parse: (env: NodeJS.ProcessEnv) => (lockBackendName(env) === 'etcd' ? etcdSettings(env) : null),
    },
  } as const;
}

export function parseRunConfig(args: string[], env: NodeJS.ProcessEnv = process.env): RunConfig {
  const settings = envSettings();
  const { values } = parseArgs({
    args,
    options: {
      recipe: { type: 'string' },
      ref: { type: 'string' },
      pr: { type: 'string' },
      src: { type: 'string' },
      stages: { type: 'string' },
      quick: { type: 'boolean' },
    },
  });
  const quick = settings.quick.parse(env);
  // Each message names what the user set: the flag when given, else the variable.
  const named = (flag: keyof typeof values, variable: string): string => (values[flag] === undefined ? variable : `--${flag}`);
  const recipe = values.recipe ?? env.RECIPE;
  if (!recipe) throw new InputError('RECIPE is required (set RECIPE or pass --recipe)');
  assertRecipe(recipe, named('recipe', 'RECIPE'));
  const ref = values.ref ?? env.REF ?? null;
  if (ref !== null && (!/^[A-Za-z0-9][A-Za-z0-9._/+-]{0,254}$/.test(ref) || ref.includes('..'))) {
    throw new InputError(
      `${named('ref', 'REF')} must be a git commit, branch or ref name (no '..', no leading '-'): ${JSON.stringify(ref)}`,
    );
  }
  const pr = values.pr ?? env.PR ?? '0';
  if (!/^[0-9]{1,9}$/.test(pr)) throw new InputError(`${named('pr', 'PR')} must be a number, got ${JSON.stringify(pr)}`);
  const src = values.src ?? env.SRC ?? null;
  if (src !== null && !/^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/.test(src)) {
    throw new InputError(`${named('src', 'SRC')} must be OWNER/REPO, got ${JSON.stringify(src)}`);
  }
  const gitBase = settings.gitBase.parse(env);
  const token = settings.token.parse(env);
  const server = settings.server.parse(env);
  return {
    recipe,
    ref,
    pr,
    src,
    stages: parseStages(values.stages ?? env.STAGES ?? STAGES.join(','), named('stages', 'STAGES')),
    gitBase,
    token,
    server,
    convergeTimeoutMs: settings.convergeTimeoutMs.parse(env),
    ingress: settings.ingress.parse(env),
    operatorTests: join(settings.testsDir.parse(env), recipe),
    testTimeoutMs: settings.testTimeoutMs.parse(env),
    maxDeps: settings.maxDeps.parse(env),
    quick: values.quick === true || quick,
    warmApps: settings.warmApps.parse(env),
    lockBackend: settings.lockBackend.parse(env),
  };
}
