// What cc-ci decides from a recipe, read from its files parsed as what they are: env files as env
// files, compose files as YAML merged and interpolated the way docker compose does for the keys
// cc-ci reads. Never grepped as text: a commented-out label or variable must not count.
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';

import { parse as parseDotenv } from 'dotenv';
import { LineCounter, parseDocument } from 'yaml';

import { InputError, show } from '../../lib/errors.js';

/** An env file's variables, or the environment compose files are interpolated from. */
export type EnvVars = Record<string, string>;

/** One service as the merged compose files define it (only the keys cc-ci reads). */
export interface ServiceFacts {
  /** deploy.labels, whether the files give a list of `k=v` strings or a map; values as strings. */
  labels: Record<string, string>;
  /** environment; null for a name given without a value (compose takes it from the shell). */
  environment: Record<string, string | null>;
  networks: string[];
  /** The docker secrets it mounts (their source names). */
  secrets: string[];
  /** The named volumes and host paths it mounts (anonymous volumes have none). */
  volumes: string[];
}

export interface RecipeFacts {
  /** The compose files read, in COMPOSE_FILE's order. */
  composeFiles: string[];
  /** Service names, in the order the files first define them. */
  services: string[];
  byService: Record<string, ServiceFacts>;
  /** Top-level declarations. */
  networks: string[];
  secrets: string[];
  volumes: string[];
  /** Some service's deploy.labels has `backupbot.backup` true. */
  backupCapable: boolean;
  /** The env sample has SECRET_*_VERSION keys, or the compose files declare secrets. */
  declaresSecrets: boolean;
  /** The `coop-cloud.<stack>.version` label's value, if a service has one. */
  version: string | null;
}

// Read as a constant: `env.NAME` in the sources is how the docs test finds variables cc-ci reads
// from its own environment, and this one comes from the recipe's.
const COMPOSE_FILE = 'COMPOSE_FILE';
const SECRET_VERSION = /^SECRET_\w+_VERSION$/;
const VERSION_LABEL = /^coop-cloud\.[^.]*\.version$/;

type Obj = Record<string, unknown>;
/** Throws bad input naming the file and `path` (a key path such as `services.app.deploy.labels`). */
type Fail = (path: string, why: string) => never;

function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function mapOf(value: unknown): Obj {
  return isObj(value) ? value : {};
}

/** `label: why (file)`, with the path only when it says more than the label. */
function badInput(file: string, label: string, why: string): InputError {
  const message = `${label}: ${why}${file === label ? '' : ` (${file})`}`;
  return new InputError(message.replace(/\s*[\r\n]+\s*/g, ' '), { path: file });
}

// ---------------------------------------------------------------------------------------------
// Env files.

/**
 * An env file's text as variables: comments, blank lines, `export `, quotes, as dotenv reads them
 * (abra reads them with godotenv; the two agree on everything a recipe's .env uses).
 */
export function parseEnv(text: string): EnvVars {
  return Object.fromEntries(Object.entries(parseDotenv(text)));
}

/** An env file's variables; a missing or unreadable file is bad input naming it. */
export function readEnvFile(path: string): EnvVars {
  return parseEnv(readText(path, basename(path)));
}

function readText(path: string, label: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw badInput(path, label, code === 'ENOENT' ? 'no such file' : `cannot be read (${code ?? String(error)})`);
  }
}

// ---------------------------------------------------------------------------------------------
// YAML.

/**
 * One YAML document as plain values: YAML 1.2 core schema plus merge keys (`<<`), as docker
 * compose reads compose files. A syntax error, a duplicate key or a second document is bad input
 * naming the file and the line. `label` names the file in messages (its path is added).
 */
export function loadYaml(text: string, file: string, label = basename(file)): unknown {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { version: '1.2', merge: true, uniqueKeys: true, prettyErrors: false, lineCounter });
  const [error] = doc.errors;
  if (error) {
    const { line, col } = lineCounter.linePos(error.pos[0]);
    const why = error.code === 'MULTIPLE_DOCS' ? 'a second YAML document starts here; the file must hold one' : error.message;
    throw badInput(file, label, `YAML syntax error at line ${line}, column ${col}: ${why}`);
  }
  try {
    // The alias cap stops a billion-laughs file; yaml throws on it and on an unresolved alias.
    return doc.toJS({ maxAliasCount: 1000 });
  } catch (e) {
    throw badInput(file, label, `bad YAML: ${(e as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Interpolation.

// Hand-written: docker compose's interpolation rules are small (the compose spec's
// "Interpolation" section) and no maintained JS library implements exactly them.
const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

/**
 * `text` with `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}`
 * and `$$` replaced from `env` as docker compose does; defaults may nest. An unset variable is
 * empty. `${VAR?err}` / `${VAR:?err}` are empty too when unset: abra supplies some variables
 * (STACK_NAME) only at deploy, where docker reports a missing required one. Any other `$` is an
 * invalid template: null is returned and the caller names the file and key.
 */
export function interpolate(text: string, env: EnvVars): string | null {
  const result = expand(text, 0, env, false);
  return result === null ? null : result.value;
}

/** Expands from `start` to the end, or (nested) to the `}` that closes, returning where it stopped. */
function expand(text: string, start: number, env: EnvVars, nested: boolean): { value: string; end: number } | null {
  let value = '';
  let i = start;
  while (i < text.length) {
    const ch = text[i]!;
    if (nested && ch === '}') return { value, end: i };
    if (ch !== '$') {
      value += ch;
      i++;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      value += '$';
      i += 2;
    } else if (next === '{') {
      const braced = expandBraced(text, i + 2, env);
      if (braced === null) return null;
      value += braced.value;
      i = braced.end + 1;
    } else {
      const name = NAME.exec(text.slice(i + 1, i + 257))?.[0];
      if (name === undefined) return null;
      value += lookup(env, name) ?? '';
      i += 1 + name.length;
    }
  }
  return nested ? null : { value, end: i };
}

/** `NAME}` or `NAME<op>word}` from `start`; `end` is the index of the closing `}`. */
function expandBraced(text: string, start: number, env: EnvVars): { value: string; end: number } | null {
  const name = NAME.exec(text.slice(start, start + 257))?.[0];
  if (name === undefined) return null;
  let i = start + name.length;
  const current = lookup(env, name);
  if (text[i] === '}') return { value: current ?? '', end: i };
  const colon = text[i] === ':';
  if (colon) i++;
  const op = text[i];
  if (op !== '-' && op !== '+' && op !== '?') return null;
  const word = expand(text, i + 1, env, true);
  if (word === null) return null;
  const set = colon ? current !== undefined && current !== '' : current !== undefined;
  const value = op === '-' ? (set ? current! : word.value) : op === '+' ? (set ? word.value : '') : (current ?? '');
  return { value, end: word.end };
}

function lookup(env: EnvVars, name: string): string | undefined {
  return Object.hasOwn(env, name) ? env[name] : undefined;
}

/** Every string value in `value` interpolated (keys are not, as in compose); `path` names a bad one. */
function interpolateTree(value: unknown, env: EnvVars, path: string, fail: Fail): unknown {
  if (typeof value === 'string') {
    const result = interpolate(value, env);
    return result ?? fail(path, `invalid interpolation format ${show(value)}: you may need to escape any $ with another $`);
  }
  if (Array.isArray(value)) return value.map((item, i) => interpolateTree(item, env, `${path}[${i}]`, fail));
  if (isObj(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateTree(v, env, join2(path, k), fail)]));
  return value;
}

function join2(path: string, key: string): string {
  const shown = /^[\w.${}-]+$/.test(key) ? key : JSON.stringify(key);
  return path ? `${path}.${shown}` : shown;
}

// ---------------------------------------------------------------------------------------------
// Compose files.

/**
 * The compose files `env` names: abra's COMPOSE_FILE, a colon-separated list of paths relative
 * to the recipe (default `compose.yml`). A missing one is bad input naming it.
 */
export function composeFiles(dir: string, env: EnvVars): string[] {
  return composeEntries(dir, env).map(({ file }) => file);
}

/** Each compose file with the name COMPOSE_FILE gives it (which messages name it by). */
function composeEntries(dir: string, env: EnvVars): { file: string; label: string }[] {
  const setting = lookup(env, COMPOSE_FILE) ?? '';
  const listed = setting
    .split(':')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  return (listed.length > 0 ? listed : ['compose.yml']).map((label) => {
    const file = join(dir, label);
    if (!existsSync(file)) throw badInput(file, label, `no such compose file (${COMPOSE_FILE}=${show(setting || 'compose.yml')})`);
    return { file, label };
  });
}

/** One compose file, interpolated, its services' read keys normalized to maps so files merge key by key. */
function loadCompose(file: string, label: string, env: EnvVars): Obj {
  const fail = (path: string, why: string): never => {
    throw badInput(file, label, path ? `${path} ${why}` : why);
  };
  const raw = loadYaml(readText(file, label), file, label) ?? {};
  if (!isObj(raw)) fail('', `the file must be a mapping of services, networks, ..., got ${show(raw)}`);
  const doc = interpolateTree(raw, env, '', fail) as Obj;
  const services = mapOrEmpty(doc.services, 'services', fail);
  const normalized = Object.entries(services).map(([name, service]) => [name, normalizeService(service, `services.${name}`, fail)]);
  const top = (key: string): Obj => mapOrEmpty(doc[key], key, fail);
  return { services: Object.fromEntries(normalized), networks: top('networks'), secrets: top('secrets'), volumes: top('volumes') };
}

function mapOrEmpty(value: unknown, path: string, fail: Fail): Obj {
  if (value === null || value === undefined) return {};
  return isObj(value) ? value : fail(path, `must be a mapping, got ${show(value)}`);
}

function normalizeService(service: unknown, path: string, fail: Fail): Obj {
  const out = { ...mapOrEmpty(service, path, fail) };
  if (out.deploy !== undefined && out.deploy !== null) {
    const deploy = { ...mapOrEmpty(out.deploy, `${path}.deploy`, fail) };
    if (deploy.labels !== undefined) deploy.labels = keyValues(deploy.labels, `${path}.deploy.labels`, fail, '');
    out.deploy = deploy;
  }
  if (out.environment !== undefined) out.environment = keyValues(out.environment, `${path}.environment`, fail, null);
  if (out.networks !== undefined)
    out.networks = byName(out.networks, `${path}.networks`, fail, (entry) => (typeof entry === 'string' ? entry : undefined));
  if (out.secrets !== undefined) out.secrets = byName(out.secrets, `${path}.secrets`, fail, source);
  if (out.volumes !== undefined) out.volumes = byName(out.volumes, `${path}.volumes`, fail, mountTarget);
  return out;
}

/**
 * A list of `k=v` strings or a map, as a map of strings: what compose does to labels and
 * environment before it merges files. `bare` is the value of a `k` with no `=`.
 */
function keyValues<T extends string | null>(value: unknown, path: string, fail: Fail, bare: T): Record<string, string | T> {
  if (value === null) return {};
  if (Array.isArray(value)) {
    return Object.fromEntries(
      value.map((entry, i) => {
        if (typeof entry !== 'string') return fail(`${path}[${i}]`, `must be a "key=value" string, got ${show(entry)}`);
        const at = entry.indexOf('=');
        return at < 0 ? [entry, bare] : [entry.slice(0, at), entry.slice(at + 1)];
      }),
    );
  }
  if (!isObj(value)) return fail(path, `must be a list of "key=value" strings or a mapping, got ${show(value)}`);
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => {
      if (v === null) return [k, bare];
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return [k, String(v)];
      return fail(join2(path, k), `must be a string, number or boolean, got ${show(v)}`);
    }),
  );
}

/** A list (of names, or of entries keyed by `keyOf`) or a map, as a map keyed the way compose merges it. */
function byName(value: unknown, path: string, fail: Fail, keyOf: (entry: unknown) => string | undefined): Obj {
  if (value === null) return {};
  if (isObj(value)) return value;
  if (!Array.isArray(value)) return fail(path, `must be a list or a mapping, got ${show(value)}`);
  return Object.fromEntries(
    value.map((entry, i) => {
      const key = keyOf(entry);
      return key === undefined ? fail(`${path}[${i}]`, `is not a valid entry: ${show(entry)}`) : [key, entry];
    }),
  );
}

/** A service secret's name: the string, or the long syntax's `source`. */
function source(entry: unknown): string | undefined {
  if (typeof entry === 'string') return entry;
  return isObj(entry) && typeof entry.source === 'string' ? entry.source : undefined;
}

/** A mount's target, which is what compose merges service volumes by. */
function mountTarget(entry: unknown): string | undefined {
  if (typeof entry === 'string') {
    const parts = entry.split(':');
    return parts.length === 1 ? parts[0] : parts[1];
  }
  return isObj(entry) && typeof entry.target === 'string' ? entry.target : undefined;
}

function mountSource(entry: unknown): string | undefined {
  if (typeof entry === 'string') {
    const parts = entry.split(':');
    return parts.length === 1 ? undefined : parts[0];
  }
  return isObj(entry) && typeof entry.source === 'string' && entry.source !== '' ? entry.source : undefined;
}

/**
 * `later` over `earlier`: mappings merge key by key, anything else the later file's value wins.
 * With labels, environment, networks, secrets and volumes normalized to maps first, that is what
 * docker compose does for them (it appends some other lists, ports say, which cc-ci does not read).
 */
function merge(earlier: Obj, later: Obj): Obj {
  const out = new Map(Object.entries(earlier));
  for (const [key, value] of Object.entries(later)) {
    const previous = out.get(key);
    out.set(key, isObj(previous) && isObj(value) ? merge(previous, value) : value);
  }
  return Object.fromEntries(out);
}

function serviceFacts(service: Obj): ServiceFacts {
  const deploy = isObj(service.deploy) ? service.deploy : {};
  const volumes = Object.values(mapOf(service.volumes))
    .map(mountSource)
    .filter((name): name is string => name !== undefined);
  return {
    labels: mapOf(deploy.labels) as Record<string, string>,
    environment: mapOf(service.environment) as Record<string, string | null>,
    networks: Object.keys(mapOf(service.networks)),
    secrets: Object.keys(mapOf(service.secrets)),
    volumes: [...new Set(volumes)],
  };
}

/** Whether a deploy label says yes the way backupbot reads it ("true", any case). */
function isTrue(value: string | undefined): boolean {
  return value !== undefined && value.trim().toLowerCase() === 'true';
}

/**
 * The recipe at `dir` as cc-ci sees it: the compose files COMPOSE_FILE names, each parsed,
 * interpolated from `env` and merged in order. `env` is the app's env; by default the recipe's
 * `.env.sample` (none: empty). Bad YAML, a missing compose file or a wrong-typed key cc-ci reads
 * is bad input naming the file.
 */
export function readRecipe(dir: string, env?: EnvVars): RecipeFacts {
  const samplePath = join(dir, '.env.sample');
  const sample = existsSync(samplePath) ? readEnvFile(samplePath) : {};
  const vars = env ?? sample;
  const entries = composeEntries(dir, vars);
  const merged = entries.map(({ file, label }) => loadCompose(file, label, vars)).reduce(merge);
  const services = mapOf(merged.services);
  const byService = Object.fromEntries(Object.entries(services).map(([name, service]) => [name, serviceFacts(service as Obj)]));
  const facts = Object.values(byService);
  const secrets = Object.keys(mapOf(merged.secrets));
  const version = facts.flatMap((s) => Object.entries(s.labels)).find(([key]) => VERSION_LABEL.test(key))?.[1] ?? null;
  return {
    composeFiles: entries.map(({ file }) => file),
    services: Object.keys(byService),
    byService,
    networks: Object.keys(mapOf(merged.networks)),
    secrets,
    volumes: Object.keys(mapOf(merged.volumes)),
    backupCapable: facts.some((s) => isTrue(lookup(s.labels, 'backupbot.backup'))),
    declaresSecrets: secrets.length > 0 || Object.keys(sample).some((key) => SECRET_VERSION.test(key)),
    version,
  };
}

/** `TYPE=<recipe>[:<version>]` (abra's own key) from an app's .env. */
export function parseAppType(envText: string): { recipe: string; version: string | null } | null {
  const match = /^\s*(?:export\s+)?TYPE=["']?([a-z0-9][a-z0-9_-]*)(?::([^"'\s#]+))?/m.exec(envText);
  return match ? { recipe: match[1]!, version: match[2] ?? null } : null;
}
