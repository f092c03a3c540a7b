// A seeded fuzz pass over every parser and validator at cc-ci's boundaries (issue 6 item 6,
// SPEC §5): `abra app ls --machine` JSON, `docker service ls` names and replicas, /proc/locks,
// the domain/recipe validators, the run-app naming both ways, the run's flags + environment,
// lockPath, a recipe's ccci.yml (and its env written into an .env) and compose interpolation. Each target gets thousands of mutated-valid and random inputs and must either answer
// with something that satisfies an independent oracle, or fail with the documented error: an
// InputError (or, for docker output, a plain Error) whose one-line message names the input. Never
// an unhandled TypeError, never a lockfile path outside the lock dir, never an accepted domain
// that breaks SPEC §5.
//
// The seed is printed; CCCI_FUZZ_SEED replays a run. CCCI_FUZZ_SCALE multiplies the case counts.
import { createHash } from 'node:crypto';
import { basename, dirname, isAbsolute, relative, resolve } from 'node:path';

import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { domainOfLockfile, lockDir, lockPath, parseProcLocks } from '../../lib/lockfiles.js';
import { InputError } from '../../lib/errors.js';
import { appDomain, assertDomain, assertRecipe, domainFromServiceName, isRunApp, stackName } from '../../lib/naming.js';
import { parseRunConfig } from '../../runner/run/config.js';
import { applyEnvKeys, type CcciContract, parseCcciYml } from '../../runner/run/contract.js';
import { interpolate, parseEnv } from '../../runner/run/recipe-files.js';
import { domainsOfServices, parseAbraAppLs } from '../../runner/host/discovery.js';
import { parseReplicas } from '../../runner/host/docker.js';
import { STAGES } from '../../runner/run/stages.js';
import { CLI } from '../support/processes.js';
import { DNS_CHARS, NASTY_CHARS, Random, mutate, seedFrom } from '../support/random.js';

const SEED = seedFrom('CCCI_FUZZ_SEED', 0x5eed_c0c1);
const SCALE = Number(process.env.CCCI_FUZZ_SCALE || 1);
const N = (count: number): number => Math.max(1, Math.round(count * SCALE));
const counts: Record<string, number> = {};
const started = performance.now();

/** An independent stream per target, so adding a target never shifts another's cases. */
function rngFor(target: string): Random {
  const salt = createHash('sha1').update(target).digest().readUInt32BE(0);
  return new Random((SEED ^ salt) >>> 0);
}

function count(target: string): void {
  counts[target] = (counts[target] ?? 0) + 1;
}

const ENV_KEYS = ['CCCI_BASE_DOMAIN', 'CCCI_APP_LOCK_DIR', 'CCCI_SERVER'] as const;
const savedEnv = Object.fromEntries(ENV_KEYS.map((key) => [key, process.env[key]]));
afterEach(() => {
  for (const key of ENV_KEYS) {
    if (savedEnv[key] === undefined) delete process.env[key];
    else process.env[key] = savedEnv[key];
  }
});

beforeAll(() => {
  console.log(`fuzz: seed ${SEED} (0x${SEED.toString(16)}) — replay with CCCI_FUZZ_SEED=${SEED}`);
});
afterAll(() => {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const ms = Math.round(performance.now() - started);
  console.log(
    `fuzz: seed ${SEED}: ${total} cases in ${ms} ms — ${Object.entries(counts)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
});

// ---------------------------------------------------------------------------------------------
// Oracles, written from SPEC §5 and DNS rules, independently of lib/naming.ts.

/** SPEC §5 plus DNS label rules: what an accepted domain must satisfy. */
function domainOk(domain: unknown): boolean {
  if (typeof domain !== 'string') return false;
  if (domain.length === 0 || domain.length > 253) return false;
  if (domain.includes('/') || domain.includes('..') || domain.includes('\0')) return false;
  if (domain !== domain.toLowerCase()) return false;
  for (const ch of domain) if (!DNS_CHARS.includes(ch)) return false;
  return domain.split('.').every((label) => label.length >= 1 && label.length <= 63 && !label.startsWith('-') && !label.endsWith('-'));
}

/** A recipe name abra would accept and that is safe as one path component. */
function recipeOk(recipe: unknown): boolean {
  if (typeof recipe !== 'string' || recipe.length === 0 || recipe.length > 100) return false;
  for (const ch of recipe) if (!'abcdefghijklmnopqrstuvwxyz0123456789-_'.includes(ch)) return false;
  return recipe[0] !== '-' && recipe[0] !== '_';
}

/** What an accepted ccci.yml must give, checked against the schema rather than contract.ts. */
function contractOk(contract: CcciContract): string | null {
  const { health, env, deps } = contract;
  const keys = (value: object): string => Object.keys(value).sort().join(',');
  if (keys(contract) !== 'deps,env,health' || keys(health) !== 'path,status,timeoutSeconds') return `shape ${JSON.stringify(contract)}`;
  if (typeof health.path !== 'string' || !health.path.startsWith('/')) return `health.path ${JSON.stringify(health.path)}`;
  if (
    health.status !== null &&
    (!Array.isArray(health.status) ||
      health.status.length === 0 ||
      !health.status.every((s) => Number.isInteger(s) && s >= 100 && s <= 599))
  ) {
    return `health.status ${JSON.stringify(health.status)}`;
  }
  if (!Number.isInteger(health.timeoutSeconds) || health.timeoutSeconds < 1 || health.timeoutSeconds > 3600)
    return `health.timeoutSeconds ${health.timeoutSeconds}`;
  for (const [key, value] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key) || typeof value !== 'string' || /[\n\r\0]/.test(value))
      return `env ${JSON.stringify([key, value])}`;
  }
  if (!Array.isArray(deps) || new Set(deps.map((d) => d.recipe)).size !== deps.length) return `deps ${JSON.stringify(deps)}`;
  for (const dep of deps) {
    if (!recipeOk(dep.recipe) || !['recipe', 'recipe,version'].includes(keys(dep))) return `dep ${JSON.stringify(dep)}`;
    if (dep.version !== undefined && (typeof dep.version !== 'string' || dep.version === '' || /\s/.test(dep.version)))
      return `dep ${JSON.stringify(dep)}`;
  }
  return null;
}

// How the validators show a bad input: strings quoted, numbers as themselves (NaN, Infinity too).
function shown(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  try {
    return String(JSON.stringify(value));
  } catch {
    return String(value);
  }
}

/**
 * The documented failure: an InputError (or, where `plain` allows it, an Error that is neither a
 * TypeError nor a RangeError) with a one-line message that contains the start of `input` as
 * JSON.stringify shows it. Anything else fails the case, with the input in the message.
 */
/** Whether `fn` accepted `input`; a refusal must be a clear InputError (checked here). */
function accepts(target: string, input: unknown, fn: (input: unknown) => void): boolean {
  try {
    fn(input);
    return true;
  } catch (error) {
    expectClearError(error, target, input);
    return false;
  }
}

function expectClearError(
  error: unknown,
  target: string,
  input: unknown,
  options: { plain?: boolean; parseArgs?: boolean; names?: string } = {},
): void {
  const where = `${target}(${shown(input).slice(0, 300)})`;
  if (!(error instanceof Error)) throw new Error(`${where} threw a non-Error: ${String(error)}`);
  const parseArgsError = options.parseArgs === true && String((error as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS');
  if (!(error instanceof InputError) && !parseArgsError) {
    if (!options.plain || error instanceof TypeError || error instanceof RangeError || error.constructor !== Error) {
      throw new Error(`${where} threw ${error.name}, not an InputError: ${error.stack}`);
    }
  }
  if (error.message.trim() === '') throw new Error(`${where}: an empty error message`);
  // node:util parseArgs errors span lines; the CLI joins them (checked through the CLI below).
  if (parseArgsError) return;
  if (error.message.includes('\n')) throw new Error(`${where}: the error message is not one clear line: ${JSON.stringify(error.message)}`);
  const name = options.names ?? shown(input);
  const head = name.slice(0, 40);
  if (!error.message.includes(head))
    throw new Error(`${where}: the message does not name the input (${head}): ${error.message.slice(0, 400)}`);
}

// ---------------------------------------------------------------------------------------------
// Generators.

function label(rng: Random, max = 12): string {
  const len = rng.int(1, max);
  if (len === 1) return rng.string('abcdefghijklmnopqrstuvwxyz0123456789', 1);
  const inner = rng.string('abcdefghijklmnopqrstuvwxyz0123456789-', len - 2);
  return rng.string('abcdefghijklmnopqrstuvwxyz0123456789', 1) + inner + rng.string('abcdefghijklmnopqrstuvwxyz0123456789', 1);
}

function validDomain(rng: Random, labels = rng.int(1, 5), max = 12): string {
  return Array.from({ length: labels }, () => label(rng, max)).join('.');
}

/** A base domain: usually short and valid, sometimes long, sometimes broken. */
function base(rng: Random): string {
  return rng.weighted<() => string>([
    [() => validDomain(rng, rng.int(1, 3), 8), 8],
    [() => 'ci.commoninternet.net', 2],
    [() => validDomain(rng, rng.int(3, 4), 63), 1],
    [() => mutate(rng, validDomain(rng, 2, 8)), 1],
  ])();
}

function runAppDomain(rng: Random, b: string): string {
  return `${rng.string('abcdefghijklmnopqrstuvwxyz0123456789', rng.int(1, 4))}-${rng.string('0123456789abcdef', 6)}.${b}`;
}

function anyString(rng: Random, maxLen = 40): string {
  return rng.weighted<() => string>([
    [() => rng.string(NASTY_CHARS, rng.int(0, maxLen)), 3],
    [() => rng.string(DNS_CHARS, rng.int(0, maxLen)), 3],
    [() => String.fromCharCode(...Array.from({ length: rng.int(0, maxLen) }, () => rng.int(0, 0xffff))), 1],
    [() => rng.string('abcdefghijklmnopqrstuvwxyz', 1).repeat(rng.int(240, 300)), 1],
  ])();
}

/** A random JSON-able value, nested up to `depth`. */
function jsonValue(rng: Random, depth: number, strings: () => string): unknown {
  const kind = rng.int(0, depth > 0 ? 8 : 5);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([0, -1, 1.5, 1e308, Number.MAX_SAFE_INTEGER + 2, 42]);
    case 3:
    case 4:
    case 5:
      return strings();
    case 6:
      return Array.from({ length: rng.int(0, 4) }, () => jsonValue(rng, depth - 1, strings));
    default: {
      const obj: Record<string, unknown> = {};
      for (let i = rng.int(0, 4); i > 0; i--) {
        obj[rng.pick(['apps', 'appName', 'domain', 'server', 'default', 'recipe', '__proto__', 'constructor', strings()])] = jsonValue(
          rng,
          depth - 1,
          strings,
        );
      }
      return obj;
    }
  }
}

/** A value of any JS type, for the validators that take `unknown`. */
function anyValue(rng: Random): unknown {
  return rng.weighted<() => unknown>([
    [() => anyString(rng), 10],
    [() => undefined, 1],
    [() => null, 1],
    [() => rng.int(-5, 5), 1],
    [() => Number.NaN, 1],
    [() => ({ toString: () => 'abc.example' }), 1],
    [() => ['abc', 'example'], 1],
    [() => new String('abc.example'), 1],
    [() => Symbol('x'), 1],
    // Not here: a bigint or a cyclic object, which no boundary (argv, env, JSON) can carry; the
    // validators' JSON.stringify throws a TypeError on them (reported, issue 6).
  ])();
}

function abraAppLsSample(rng: Random, b: string): string {
  const servers: Record<string, unknown> = {};
  for (let s = rng.int(0, 3); s > 0; s--) {
    const apps = Array.from({ length: rng.int(0, 4) }, () => {
      const name = rng.chance(0.7) ? runAppDomain(rng, b) : validDomain(rng);
      return {
        server: 'default',
        recipe: 'ccci-demo',
        appName: name,
        domain: rng.chance(0.8) ? name : validDomain(rng),
        status: rng.pick(['', 'deployed', 'unknown']),
        chaos: 'false',
        chaosVersion: 'unknown',
        autoUpdate: 'unknown',
        version: '0.1.0+1.0',
        upgrade: 'unknown',
      };
    });
    servers[rng.pick(['default', 'local', 'server.example'])] = {
      apps,
      appCount: apps.length,
      versionCount: 0,
      unversionedCount: 0,
      latestCount: 0,
      upgradeCount: 0,
    };
  }
  return rng.chance(0.2) ? JSON.stringify(Object.values(servers).flatMap((s) => (s as { apps: unknown[] }).apps)) : JSON.stringify(servers);
}

function serviceLines(rng: Random, b: string): string {
  const lines: string[] = [];
  for (let i = rng.int(0, 6); i > 0; i--) {
    const domain = rng.chance(0.7) ? runAppDomain(rng, b) : validDomain(rng);
    // Built by hand (not stackName): the base may be deliberately broken here.
    lines.push(`${domain.replaceAll('.', '_').slice(0, 45)}_${rng.pick(['app', 'db', 'db_backup', 'web-1'])}`);
  }
  return lines.join('\n');
}

function replicaLines(rng: Random): string {
  const lines: string[] = [];
  for (let i = rng.int(0, 6); i > 0; i--) {
    lines.push(
      `${validDomain(rng, 1).replaceAll('.', '_')}_app ${rng.int(0, 5)}/${rng.int(0, 5)}${rng.chance(0.2) ? ' (max 1 per node)' : ''}`,
    );
  }
  return lines.join('\n');
}

function procLocksSample(rng: Random): string {
  const lines: string[] = [];
  for (let i = rng.int(0, 8); i > 0; i--) {
    const kind = rng.pick(['FLOCK', 'POSIX', 'OFDLCK', 'LEASE']);
    const mode = rng.pick(['ADVISORY', 'MANDATORY']);
    const type = rng.pick(['READ', 'WRITE']);
    const waiter = rng.chance(0.2) ? '-> ' : '';
    const dev = `${rng.int(0, 255).toString(16).padStart(2, '0')}:${rng.int(0, 255).toString(16).padStart(2, '0')}`;
    lines.push(`${rng.int(1, 99)}: ${waiter}${kind}  ${mode}  ${type} ${rng.int(1, 4_194_304)} ${dev}:${rng.int(1, 2 ** 40)} 0 EOF`);
  }
  return lines.join('\n');
}

/** A ccci.yml as a recipe would write it: block or flow style, comments, sometimes an anchor. */
function ccciYmlSample(rng: Random): string {
  const lines: string[] = [];
  if (rng.chance(0.2)) lines.push('# what cc-ci checks');
  if (rng.chance(0.7)) {
    lines.push('health:');
    if (rng.chance(0.7)) lines.push(`  path: ${rng.pick(['/', '/health', '"/x?y=1"', '/a/b', "'/'"])}`);
    if (rng.chance(0.5))
      lines.push(
        `  status: [${Array.from({ length: rng.int(1, 3) }, () => rng.pick([200, 204, 302, 401, rng.int(100, 599)])).join(', ')}]`,
      );
    if (rng.chance(0.5)) lines.push(`  timeoutSeconds: ${rng.pick([1, 60, 300, 3600, rng.int(1, 3600)])}`);
  }
  if (rng.chance(0.6)) {
    lines.push(rng.chance(0.2) ? 'env: &env' : 'env:');
    for (let i = rng.int(0, 4); i > 0; i--) {
      const value = rng.pick([
        '1',
        'true',
        'hello',
        '"two words"',
        "'it''s'",
        'ci@example.org',
        '""',
        '"$HOME"',
        `"${rng.string("ab $#:'`", rng.int(0, 8))}"`,
      ]);
      lines.push(`  ${rng.pick(['A', 'DOMAIN', 'X_1', '_Y', 'ADMIN_EMAIL'])}${i}: ${value}`);
    }
  }
  if (rng.chance(0.5)) {
    lines.push('deps:');
    for (let i = rng.int(0, 3); i > 0; i--) {
      const recipe = `${rng.pick(['mariadb', 'redis', 'a', 'x_y-z'])}${i}`;
      if (rng.chance(0.3)) lines.push(`  - {recipe: ${recipe}${rng.chance(0.5) ? ', version: "1.2.0+3"' : ''}}`);
      else lines.push(`  - recipe: ${recipe}`, ...(rng.chance(0.5) ? [`    version: ${rng.pick(['"1.0.0+2.3"', 'main', "'v2'"])}`] : []));
    }
  }
  return lines.join('\n');
}

/** A ccci.yml as JSON (which is YAML) of the contract's keys, each of the right type or not. */
function ccciJsonSample(rng: Random): string {
  const junk = (): unknown => jsonValue(rng, 2, () => anyString(rng, 12));
  const maybe = (good: () => unknown): unknown => (rng.chance(0.7) ? good() : junk());
  const obj: Record<string, unknown> = {};
  if (rng.chance(0.7)) {
    obj.health = maybe(() => {
      const health: Record<string, unknown> = {};
      if (rng.chance(0.6)) health.path = maybe(() => rng.pick(['/', '/up', 'up', '']));
      if (rng.chance(0.6)) health.status = maybe(() => Array.from({ length: rng.int(0, 3) }, () => rng.int(50, 650)));
      if (rng.chance(0.6)) health.timeoutSeconds = maybe(() => rng.pick([0, 1, 3600, 3601, 1.5, -1, '60', rng.int(1, 4000)]));
      if (rng.chance(0.05)) health[rng.pick(['timeout', 'Path', ''])] = 1;
      return health;
    });
  }
  if (rng.chance(0.6))
    obj.env = maybe(() =>
      Object.fromEntries(Array.from({ length: rng.int(0, 4) }, () => [rng.pick(['A', 'B_2', '1X', 'a-b', '']), junk()])),
    );
  if (rng.chance(0.5))
    obj.deps = maybe(() =>
      Array.from({ length: rng.int(0, 3) }, () => ({ recipe: maybe(() => rng.pick(['a', 'b', 'A', '../x'])), version: junk() })),
    );
  if (rng.chance(0.05)) obj[rng.pick(['healthcheck', 'Env', 'dep'])] = junk();
  return JSON.stringify(obj, null, rng.chance(0.5) ? 2 : undefined);
}

/** An app's .env as abra writes one: comments, blank lines, export, quoted and commented values. */
function envFileSample(rng: Random): string {
  const lines: string[] = [];
  for (let i = rng.int(0, 8); i > 0; i--) {
    const key = rng.pick(['A1', 'DOMAIN1', 'X_11', 'TYPE', 'SECRET_DB_VERSION']);
    lines.push(
      rng.pick([
        `# ${key}=commented`,
        '',
        `${key}=${rng.string('abc123._-', rng.int(0, 6))}`,
        `export ${key}=v`,
        `${key}="two words" # note`,
        `${key}='single'`,
        `${key}=v1 # length=32`,
        `  ${key} = spaced`,
        `${key}="multi\n${key}=line"`,
      ]),
    );
  }
  return lines.join(rng.chance(0.1) ? '\r\n' : '\n') + (rng.chance(0.7) ? '\n' : '');
}

/** `count` inputs: a fraction valid, most mutated from valid ones, some random. */
function* inputs(rng: Random, total: number, valid: () => string, random: () => string = () => anyString(rng, 200)): Generator<string> {
  for (let i = 0; i < total; i++) {
    const roll = rng.float();
    if (roll < 0.15) yield valid();
    else if (roll < 0.85) yield mutate(rng, valid());
    else yield random();
  }
}

// ---------------------------------------------------------------------------------------------

describe(`parser fuzz (seed ${SEED})`, () => {
  it('parseAbraAppLs: a list of non-empty names, or an InputError naming the output', () => {
    const rng = rngFor('parseAbraAppLs');
    const b = base(rng);
    const structured = (): string =>
      JSON.stringify(jsonValue(rng, 4, () => (rng.chance(0.5) ? runAppDomain(rng, 'x.example') : anyString(rng, 20))));
    for (const input of inputs(
      rng,
      N(4000),
      () => abraAppLsSample(rng, b),
      () => (rng.chance(0.6) ? structured() : anyString(rng, 300)),
    )) {
      count('parseAbraAppLs');
      let names: string[];
      try {
        names = parseAbraAppLs(input);
      } catch (error) {
        expectClearError(error, 'parseAbraAppLs', input, { names: JSON.stringify(input.slice(0, 200)) });
        continue;
      }
      expect(Array.isArray(names), input).toBe(true);
      for (const name of names) expect(typeof name === 'string' && name.length > 0, `${input} -> ${shown(name)}`).toBe(true);
      expect(new Set(names).size, input).toBe(names.length);
    }
  });

  it('parseAbraAppLs: every app a well-formed listing names is found', () => {
    const rng = rngFor('parseAbraAppLs-complete');
    for (let i = 0; i < N(1500); i++) {
      count('parseAbraAppLs');
      const input = abraAppLsSample(rng, base(rng));
      const data = JSON.parse(input) as unknown;
      const apps = (Array.isArray(data) ? data : Object.values(data as Record<string, { apps: unknown[] }>).flatMap((s) => s.apps)) as {
        appName: string;
        domain: string;
      }[];
      const names = new Set(parseAbraAppLs(input));
      for (const app of apps) {
        expect(names.has(app.appName), input).toBe(true);
        expect(names.has(app.domain), input).toBe(true);
      }
    }
  });

  it('domainsOfServices / domainFromServiceName: only run-app domains of the base, exact inverse of stackName', () => {
    const rng = rngFor('domainsOfServices');
    for (let i = 0; i < N(3000); i++) {
      const b = base(rng);
      const input = rng.chance(0.15)
        ? serviceLines(rng, validDomain(rng, 2, 6))
        : rng.chance(0.8)
          ? mutate(rng, serviceLines(rng, b))
          : anyString(rng, 200);
      count('domainsOfServices');
      let domains: string[];
      try {
        domains = domainsOfServices(input, b);
      } catch (error) {
        // Only a base domain that is itself bad (or too long to make a run app) may be refused.
        expectClearError(error, 'domainsOfServices', input, { names: '' });
        expect(domainOk(b) && `x-000000.${b}`.length <= 253, `a valid base ${b} made domainsOfServices throw: ${String(error)}`).toBe(
          false,
        );
        continue;
      }
      const lines = input.split('\n').map((line) => line.trim());
      for (const domain of domains) {
        expect(domainOk(domain), domain).toBe(true);
        expect(isRunApp(domain, b), `${domain} (base ${b})`).toBe(true);
        expect(
          lines.some((line) => line.startsWith(`${stackName(domain)}_`)),
          `${domain} from ${JSON.stringify(input)}`,
        ).toBe(true);
      }
    }
    // And every run app a run can create is found again from its services.
    for (let i = 0; i < N(3000); i++) {
      count('domainFromServiceName');
      const b = rng.chance(0.3) ? validDomain(rng, rng.int(2, 4), 30) : validDomain(rng, rng.int(1, 3), 8);
      const domain = runAppDomain(rng, b);
      if (!domainOk(domain)) continue;
      const service = `${stackName(domain)}_${rng.pick(['app', 'db', 'a_b', 'x'])}`;
      expect(domainFromServiceName(service, b), `${service} (base ${b})`).toBe(domain);
      expect(domainsOfServices(`${service}\n${service}\n`, b)).toEqual([domain]);
      // A warm/canonical app never maps back to a run app.
      const warm = `${rng.pick(['warm-keycloak', 'keycloak', 'drone-ci', 'warm'])}${rng.pick(['', `-${label(rng)}z`, `.${label(rng)}`])}.${b}`;
      expect(domainFromServiceName(`${stackName(warm)}_app`, b), warm).toBeNull();
    }
  });

  it('parseReplicas: N/M counts as safe integers, or an Error naming the line', () => {
    const rng = rngFor('parseReplicas');
    for (const input of inputs(rng, N(6000), () => replicaLines(rng))) {
      count('parseReplicas');
      let replicas: Map<string, { running: number; desired: number }>;
      try {
        replicas = parseReplicas(input);
      } catch (error) {
        expect(error instanceof Error && !(error instanceof TypeError), String(error)).toBe(true);
        const line = input.split('\n').find((l) => (error as Error).message.includes(JSON.stringify(l)));
        expect(line, `parseReplicas(${JSON.stringify(input)}) failed without naming a line: ${(error as Error).message}`).toBeDefined();
        expect((error as Error).message).toMatch(/^unparseable docker service ls line: /);
        expect((error as Error).message.includes('\n')).toBe(false);
        continue;
      }
      for (const [name, { running, desired }] of replicas) {
        expect(name.length > 0 && !/\s/.test(name), name).toBe(true);
        expect(Number.isSafeInteger(running) && running >= 0, `${JSON.stringify(input)}: ${name} running ${running}`).toBe(true);
        expect(Number.isSafeInteger(desired) && desired >= 0, `${JSON.stringify(input)}: ${name} desired ${desired}`).toBe(true);
      }
    }
  });

  it('parseProcLocks: granted FLOCK locks only, keys major:minor:inode, pids safe integers; never throws', () => {
    const rng = rngFor('parseProcLocks');
    for (const input of inputs(rng, N(6000), () => procLocksSample(rng))) {
      count('parseProcLocks');
      const owners = parseProcLocks(input);
      for (const [key, pid] of owners) {
        expect(key, JSON.stringify(input)).toMatch(/^[0-9a-f]+:[0-9a-f]+:\d+$/);
        // (A pid past 2^53 loses precision, harmlessly: the kernel's pid_max is 2^22.)
        expect(Number.isInteger(pid) && pid > 0, `${JSON.stringify(input)}: pid ${pid}`).toBe(true);
        // The key came from a granted (not "->" waiting) FLOCK line of the input.
        const granted = input.split('\n').filter((l) => new RegExp(`\\s\\d+\\s+${key}\\s`).test(l) && /^\d+:\s+FLOCK\s/.test(l));
        expect(granted.length > 0, `${key} -> ${pid} from ${JSON.stringify(input)}`).toBe(true);
      }
    }
  });

  it('assertDomain: accepts exactly the SPEC §5 / DNS-valid domains; refuses the rest with an InputError naming them', () => {
    const rng = rngFor('assertDomain');
    const check = (input: unknown): void => {
      count('assertDomain');
      const accepted = accepts('assertDomain', input, assertDomain);
      expect(accepted, `assertDomain(${shown(input).slice(0, 300)})`).toBe(domainOk(input));
      if (accepted) {
        const file = `cc-ci-app-${input as string}.lock`;
        expect(basename(file)).toBe(file);
      }
    };
    for (const input of inputs(rng, N(6000), () => validDomain(rng, rng.int(1, 6), rng.chance(0.1) ? 63 : 12))) check(input);
    // Around the length limits exactly.
    for (let i = 0; i < N(500); i++) {
      const long = Array.from({ length: 5 }, () => label(rng, 63))
        .join('.')
        .slice(0, rng.int(240, 260))
        .replace(/[.-]+$/, '');
      check(long);
      check(`${label(rng, 10)}.${rng.string('abc', rng.int(62, 64))}`);
    }
  });

  it('assertDomain / assertRecipe: a value of any type is refused with an InputError, never a TypeError', () => {
    const rng = rngFor('anyValue');
    for (let i = 0; i < N(2000); i++) {
      const input = anyValue(rng);
      for (const [target, fn, ok] of [
        ['assertDomain', assertDomain, domainOk],
        ['assertRecipe', assertRecipe, recipeOk],
      ] as const) {
        count(target);
        let accepted = false;
        try {
          fn(input);
          accepted = true;
        } catch (error) {
          expect(error instanceof InputError, `${target}(${typeof input} ${shown(input).slice(0, 100)}) threw ${String(error)}`).toBe(true);
        }
        expect(accepted, `${target}(${shown(input)})`).toBe(ok(input));
      }
    }
  });

  it('assertRecipe: 1-100 of a-z 0-9 - _ starting alphanumeric, never a path character', () => {
    const rng = rngFor('assertRecipe');
    const valid = (): string =>
      rng.string('abcdefghijklmnopqrstuvwxyz0123456789', 1) +
      rng.string('abcdefghijklmnopqrstuvwxyz0123456789-_', rng.int(0, rng.chance(0.1) ? 100 : 20));
    for (const input of inputs(rng, N(5000), valid)) {
      count('assertRecipe');
      const accepted = accepts('assertRecipe', input, assertRecipe);
      expect(accepted, `assertRecipe(${JSON.stringify(input)})`).toBe(recipeOk(input));
      if (accepted) expect(/[/\\.\0]/.test(input)).toBe(false);
    }
  });

  it('appDomain: always a valid run-app domain of the base that the janitor finds both ways, or an InputError', () => {
    const rng = rngFor('appDomain');
    const recipe = (): string =>
      rng.string('abcdefghijklmnopqrstuvwxyz0123456789', 1) + rng.string('abcdefghijklmnopqrstuvwxyz0123456789-_', rng.int(0, 20));
    for (let i = 0; i < N(4000); i++) {
      count('appDomain');
      const b = base(rng);
      if (rng.chance(0.9)) process.env.CCCI_BASE_DOMAIN = b;
      else delete process.env.CCCI_BASE_DOMAIN;
      const effective = process.env.CCCI_BASE_DOMAIN || 'ci.commoninternet.net';
      const r = rng.chance(0.7) ? recipe() : rng.chance(0.7) ? mutate(rng, recipe()) : anyString(rng);
      const pr: string | number = rng.weighted<() => string | number>([
        [() => String(rng.int(0, 99999)), 4],
        [() => rng.int(0, 99999), 2],
        [() => rng.pick([-1, 1.5, Number.NaN, Infinity, 2 ** 60, -0]), 1],
        [() => anyString(rng, 12), 1],
      ])();
      const ref = rng.chance(0.5) ? rng.string('0123456789abcdef', rng.int(0, 40)) : anyString(rng, 60);
      let domain: string;
      try {
        domain = appDomain(r, pr, ref);
      } catch (error) {
        const prBad = typeof pr === 'number' && !(Number.isSafeInteger(pr) && pr >= 0);
        const which = !recipeOk(r) ? shown(r) : prBad ? shown(pr) : domainOk(effective) ? '' : shown(effective);
        expectClearError(error, 'appDomain', [r, pr, ref, effective], { names: which });
        // Refused only for a bad recipe, a bad PR number, or a bad/too-long base.
        const fine =
          recipeOk(r) &&
          domainOk(effective) &&
          effective.length <= 253 - 12 &&
          (typeof pr === 'string' || (Number.isSafeInteger(pr) && pr >= 0));
        expect(fine, `appDomain(${shown([r, pr, ref])}) with base ${effective} refused: ${String(error)}`).toBe(false);
        continue;
      }
      const digest = createHash('sha1').update(`${r}|${pr}|${ref}`).digest('hex').slice(0, 6);
      expect(domain).toBe(`${r.slice(0, 4).replace(/[-_]/g, '')}-${digest}.${effective}`);
      expect(domainOk(domain), domain).toBe(true);
      expect(isRunApp(domain, effective), domain).toBe(true);
      expect(domainFromServiceName(`${stackName(domain)}_app`, effective), domain).toBe(domain);
      expect(parseAbraAppLs(JSON.stringify({ default: { apps: [{ appName: domain, domain }] } }))).toEqual([domain]);
    }
  });

  it('parseRunConfig: flags + environment give a config every later step accepts, or a clear InputError', () => {
    const rng = rngFor('parseRunConfig');
    const goodRecipe = (): string => rng.pick(['ccci-demo', 'keycloak', 'a', 'a_b-c', 'x'.repeat(100)]);
    const value = (good: () => string): string => (rng.chance(0.5) ? good() : rng.chance(0.6) ? mutate(rng, good()) : anyString(rng, 60));
    const goods: Record<string, () => string> = {
      recipe: goodRecipe,
      ref: () => rng.pick(['main', 'refs/pull/7/head', 'v1.2.3+4.5', rng.string('0123456789abcdef', 40), 'feature/x_y']),
      pr: () => String(rng.int(0, 999_999_999)),
      src: () => rng.pick(['coop-cloud/keycloak', 'a/b', 'Owner.x/Repo-1_2']),
      stages: () =>
        rng
          .shuffle(STAGES)
          .slice(0, rng.int(1, STAGES.length))
          .join(rng.pick([',', ', ', ',,'])),
    };
    const envNames: Record<string, string> = { recipe: 'RECIPE', ref: 'REF', pr: 'PR', src: 'SRC', stages: 'STAGES' };
    for (let i = 0; i < N(4000); i++) {
      count('parseRunConfig');
      const args: string[] = [];
      const env: NodeJS.ProcessEnv = {};
      for (const [flag, good] of Object.entries(goods)) {
        if (rng.chance(0.35)) args.push(...(rng.chance(0.5) ? [`--${flag}`, value(good)] : [`--${flag}=${value(good)}`]));
        if (rng.chance(0.4)) env[envNames[flag]!] = value(good);
      }
      if (rng.chance(0.05)) args.push(rng.pick(['--bogus', '-x', 'positional', '--', '--pr', '--recipe=']));
      if (rng.chance(0.05)) env.CCCI_QUICK = rng.pick(['1', '0', '']);
      if (rng.chance(0.15)) env.CCCI_CONVERGE_TIMEOUT_SECONDS = value(() => String(rng.int(1, 9_999_999)));
      if (rng.chance(0.1)) env.CCCI_GIT_TOKEN = anyString(rng, 20);
      if (rng.chance(0.1)) process.env.CCCI_SERVER = value(() => rng.pick(['default', 'server.example', 'local_1']));
      else delete process.env.CCCI_SERVER;
      const input = { args, env, CCCI_SERVER: process.env.CCCI_SERVER };
      let config: ReturnType<typeof parseRunConfig>;
      try {
        config = parseRunConfig(args, env);
      } catch (error) {
        expectClearError(error, 'parseRunConfig', input, { parseArgs: true, names: '' });
        continue;
      }
      const where = JSON.stringify(input);
      expect(recipeOk(config.recipe), where).toBe(true);
      expect(config.pr, where).toMatch(/^[0-9]{1,9}$/);
      if (config.ref !== null) {
        expect(config.ref.includes('..') || config.ref.startsWith('-') || /[\s\0~^:?*[\\]/.test(config.ref), where).toBe(false);
        expect(config.ref.length <= 255, where).toBe(true);
      }
      if (config.src !== null) expect(config.src, where).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/);
      expect(config.src === null || !config.src.split('/').some((part) => part === '..' || part === '.'), where).toBe(true);
      expect(
        config.stages.length > 0 &&
          config.stages.every((s, k) => STAGES.indexOf(s) > (k === 0 ? -1 : STAGES.indexOf(config.stages[k - 1]!))),
        where,
      ).toBe(true);
      expect(Number.isSafeInteger(config.convergeTimeoutMs) && config.convergeTimeoutMs > 0, where).toBe(true);
      expect(config.server, where).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]*$/);
      expect(config.server.includes('..'), where).toBe(false);
      // Whatever parseRunConfig accepts, the run can name an app for.
      const domain = appDomain(config.recipe, config.pr, config.ref ?? '');
      expect(domainOk(domain) && isRunApp(domain), where).toBe(true);
    }
  });

  it('the CLI prints every refused run configuration as one line and exits 2', async () => {
    // Only inputs parseRunConfig refuses in-process go to the CLI, so no case can start a run.
    const rng = rngFor('cli');
    const cases: string[][] = [
      ['--pr', '-5'],
      ['--pr'],
      ['--bogus'],
      ['--recipe', 'a\nb'],
      ['--recipe', 'ok', '--ref', '..\n..'],
      ['--recipe', 'ok', '--stages', 'install,\nnope'],
      ['positional'],
    ];
    while (cases.length < 9) {
      const args = [
        rng.pick(['--pr', '--ref', '--stages', '--src', '--recipe']),
        mutate(rng, rng.pick(['-1', '7', 'main', 'a/b', 'install'])),
      ];
      try {
        parseRunConfig(args, { RECIPE: 'ccci-demo' });
      } catch {
        cases.push(args);
      }
    }
    await Promise.all(
      cases.map(async (args) => {
        count('cli');
        const env = { PATH: process.env.PATH, HOME: '/nonexistent', RECIPE: 'ccci-demo', CCCI_RUNS_DIR: '/nonexistent/runs' };
        const { exitCode, stdout, stderr } = await execa(process.execPath, [CLI, 'run', ...args], {
          env,
          extendEnv: false,
          reject: false,
          timeout: 20_000,
        });
        expect(exitCode, `${JSON.stringify(args)}: ${stderr}`).toBe(2);
        expect(stdout, JSON.stringify(args)).toBe('');
        expect(stderr.replace(/\n$/, '').split('\n'), JSON.stringify(args)).toHaveLength(1);
        expect(stderr).toMatch(/^cc-ci run: \S/);
      }),
    );
  });

  it('parseCcciYml: a contract that satisfies the schema, or a one-line InputError naming the file', () => {
    const rng = rngFor('parseCcciYml');
    const file = '/fuzz/recipe/ccci.yml';
    const random = (): string => (rng.chance(0.5) ? ccciJsonSample(rng) : anyString(rng, 200));
    for (const input of inputs(rng, N(4000), () => (rng.chance(0.6) ? ccciYmlSample(rng) : ccciJsonSample(rng)), random)) {
      count('parseCcciYml');
      let contract: CcciContract;
      try {
        contract = parseCcciYml(input, file);
      } catch (error) {
        expectClearError(error, 'parseCcciYml', input, { names: 'ccci.yml: ' });
        expect(
          (error as Error).message.startsWith('ccci.yml: ') && (error as Error).message.endsWith(` (${file})`),
          (error as Error).message,
        ).toBe(true);
        continue;
      }
      const wrong = contractOk(contract);
      expect(wrong, `parseCcciYml(${JSON.stringify(input)}) accepted a bad ${wrong}`).toBeNull();
    }
  });

  it('applyEnvKeys: what a contract sets reads back as set, every other variable as before; idempotent on any text', () => {
    const rng = rngFor('applyEnvKeys');
    for (let i = 0; i < N(3000); i++) {
      count('applyEnvKeys');
      // dotenv, the reader here, and godotenv, abra's, part ways only on malformed files: mutated
      // ones are checked for idempotence and clear refusals, well-formed ones are read back.
      const wellFormed = rng.chance(0.7);
      const text = wellFormed ? envFileSample(rng) : mutate(rng, envFileSample(rng));
      let keys: Record<string, string>;
      try {
        keys = parseCcciYml(rng.chance(0.8) ? ccciYmlSample(rng) : ccciJsonSample(rng), 'ccci.yml').env;
      } catch {
        continue;
      }
      let out: string;
      try {
        out = applyEnvKeys(text, keys);
      } catch (error) {
        expectClearError(error, 'applyEnvKeys', { text, keys }, { names: '' });
        const unwritable = Object.values(keys).some((v) => (v.includes("'") || v.endsWith('\\')) && /["\\$`]/.test(v));
        expect(
          unwritable || (!wellFormed && (error as Error).message.startsWith('.env: line ')),
          `${String(error)} for ${JSON.stringify({ text, keys })}`,
        ).toBe(true);
        continue;
      }
      const where = JSON.stringify({ text, keys, out });
      let again: string | Error;
      try {
        again = applyEnvKeys(out, keys);
      } catch (error) {
        again = error as Error;
      }
      expect(again, where).toBe(out);
      if (!wellFormed) continue;
      const before = parseEnv(text);
      const after = parseEnv(out);
      for (const [key, value] of Object.entries(keys)) expect(after[key], where).toBe(value);
      for (const [key, value] of Object.entries(before)) if (!Object.hasOwn(keys, key)) expect(after[key], where).toBe(value);
      // Only definitions change: every comment line survives.
      for (const line of text.split(/\r?\n/)) if (line.startsWith('#')) expect(out.split(/\r?\n/), where).toContain(line);
    }
  });

  it('interpolate: a string or null (an invalid template), never a throw; text without $ unchanged', () => {
    const rng = rngFor('interpolate');
    const env = { A: 'a', EMPTY: '', STACK_NAME: 'x_y' };
    const valid = (): string =>
      rng
        // biome-ignore lint/suspicious/noTemplateCurlyInString: compose interpolation templates, not JS ones
        .pick(['${A}', '$A', '${B:-d}', '${EMPTY-d}', '$$', 'x', '${A:+${B:-c}}', 'coop-cloud.${STACK_NAME}.version=1'])
        .repeat(rng.int(1, 3));
    for (const input of inputs(rng, N(4000), valid)) {
      count('interpolate');
      const out = interpolate(input, env);
      expect(out === null || typeof out === 'string', JSON.stringify(input)).toBe(true);
      if (!input.includes('$')) expect(out, JSON.stringify(input)).toBe(input);
      if (out !== null && !input.includes('${'))
        expect(out.length <= input.length + 16 * (input.split('$').length - 1), JSON.stringify(input)).toBe(true);
    }
  });

  it('lockPath: always one file directly inside lockDir(), named after the domain, or an InputError (a relative lock dir, always)', () => {
    const rng = rngFor('lockPath');
    const dirs = (): string =>
      rng.weighted<() => string>([
        [() => `/tmp/ccci-fuzz-${label(rng)}`, 4],
        [() => '', 1],
        [() => '/', 1],
        [() => `/tmp/${label(rng)}/`, 1],
        [() => `/tmp/a/../${label(rng)}//x/.`, 1],
        [() => `rel/${label(rng)}`, 1],
        [() => `/tmp/${anyString(rng, 10).replaceAll('\0', '')}`, 1],
      ])();
    for (const input of inputs(rng, N(5000), () => validDomain(rng, rng.int(1, 5)))) {
      count('lockPath');
      const dir = dirs();
      process.env.CCCI_APP_LOCK_DIR = dir;
      if (dir !== '' && !isAbsolute(dir)) {
        // a relative lock dir is refused whatever the domain, naming the variable
        expect(() => lockPath(input)).toThrow(/^CCCI_APP_LOCK_DIR must be an absolute path/);
        continue;
      }
      let path: string;
      try {
        path = lockPath(input);
      } catch (error) {
        expectClearError(error, 'lockPath', input);
        expect(domainOk(input), `lockPath refused a valid domain ${input}`).toBe(false);
        continue;
      }
      expect(domainOk(input), `lockPath accepted ${JSON.stringify(input)}`).toBe(true);
      const resolved = resolve(lockDir());
      expect(resolve(dirname(path)), `${path} vs ${resolved}`).toBe(resolved);
      const rel = relative(resolved, resolve(path));
      expect(rel.includes('/') || rel === '..' || rel === '.' || rel === '' || isAbsolute(rel), rel).toBe(false);
      expect(basename(path)).toBe(`cc-ci-app-${input}.lock`);
      expect(domainOfLockfile(basename(path))).toBe(input);
    }
  });
});
