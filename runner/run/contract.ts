// A recipe's CI contract, `ccci.yml`: how cc-ci checks the app's health, what it adds to the
// app's .env, and which other recipes it needs. Parsed and validated here, whole, before anything
// deploys: a bad file is one line of bad input naming the file, the key and why.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

import { InputError, show } from '../../lib/errors.js';
import { loadYaml } from './recipe-files.js';

export interface HealthContract {
  /** The path the health check requests, starting with '/'. */
  path: string;
  /** The statuses that count as healthy; null accepts 200-399. */
  status: number[] | null;
  timeoutSeconds: number;
}

export interface DepContract {
  /** The recipe's name. */
  recipe: string;
  /** The version to deploy it at; absent, its latest. */
  version?: string;
}

export interface CcciContract {
  health: HealthContract;
  /** Set in the app's .env before it deploys (see applyEnvKeys). */
  env: Record<string, string>;
  deps: DepContract[];
}

export const DEFAULT_HEALTH: Readonly<HealthContract> = { path: '/', status: null, timeoutSeconds: 300 };

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
// The names lib/naming.ts assertRecipe accepts.
const RECIPE = /^[a-z0-9][a-z0-9_-]{0,99}$/;

type Obj = Record<string, unknown>;

/** Refuses a bad value: `ccci.yml: <key path> <why> (<file>)`. */
class Reader {
  constructor(readonly file: string) {}

  fail(path: string, why: string): never {
    const label = basename(this.file);
    const message = `${label}: ${path ? `${path} ` : ''}${why}${this.file === label ? '' : ` (${this.file})`}`;
    throw new InputError(message.replace(/\s*[\r\n]+\s*/g, ' '), { path: this.file });
  }

  /** A mapping with only `known` keys; null or absent is empty (a section left empty means its defaults). */
  map(value: unknown, path: string, known: readonly string[] | null): Obj {
    if (value === null || value === undefined) return {};
    if (typeof value !== 'object' || Array.isArray(value)) {
      this.fail(path, `${path ? '' : 'the file '}must be a mapping${known ? ` of ${known.join(', ')}` : ''}, got ${show(value)}`);
    }
    const obj = value as Obj;
    if (known) {
      const unknown = Object.keys(obj).find((key) => !known.includes(key));
      if (unknown !== undefined) this.fail(keyPath(path, unknown), `is not a known key (known: ${known.join(', ')})`);
    }
    return obj;
  }
}

function keyPath(path: string, key: string): string {
  const shown = /^[\w-]+$/.test(key) ? key : JSON.stringify(key);
  return path ? `${path}.${shown}` : shown;
}

/** What a `ccci.yml` is checked against besides its own shape: the recipe it belongs to and CCCI_MAX_DEPS. */
export interface ContractLimits {
  /** The recipe under test: it cannot depend on itself. */
  recipe?: string;
  /** At most this many `deps` (CCCI_MAX_DEPS, default 5). */
  maxDeps?: number;
}

export const DEFAULT_MAX_DEPS = 5;

/**
 * `ccci.yml`'s text, checked whole. Every key is optional (null counts as absent); an empty file
 * or `{}` gives all the defaults. A syntax error, a second document, an unknown key, a wrong type
 * or a bad value is an InputError of one line naming `file`, the key path and why.
 */
export function parseCcciYml(text: string, file: string, limits: ContractLimits = {}): CcciContract {
  const reader = new Reader(file);
  const top = reader.map(loadYaml(text, file), '', ['health', 'env', 'deps']);
  return { health: health(reader, top.health), env: env(reader, top.env), deps: deps(reader, top.deps, limits) };
}

function health(reader: Reader, value: unknown): HealthContract {
  const obj = reader.map(value, 'health', ['path', 'status', 'timeoutSeconds']);
  const out = { ...DEFAULT_HEALTH };
  if (obj.path !== null && obj.path !== undefined) {
    const path = obj.path;
    if (typeof path !== 'string' || !path.startsWith('/') || /[\s\p{Cc}]/u.test(path)) {
      reader.fail('health.path', `must be a URL path starting with '/' (no spaces), got ${show(path)}`);
    }
    out.path = path;
  }
  if (obj.status !== null && obj.status !== undefined) out.status = statuses(reader, obj.status);
  if (obj.timeoutSeconds !== null && obj.timeoutSeconds !== undefined) {
    const seconds = obj.timeoutSeconds;
    if (!Number.isInteger(seconds) || (seconds as number) < 1 || (seconds as number) > 3600) {
      reader.fail('health.timeoutSeconds', `must be a whole number of seconds from 1 to 3600, got ${show(seconds)}`);
    }
    out.timeoutSeconds = seconds as number;
  }
  return out;
}

function statuses(reader: Reader, value: unknown): number[] {
  if (!Array.isArray(value) || value.length === 0)
    reader.fail('health.status', `must be a non-empty list of HTTP statuses, got ${show(value)}`);
  return value.map((status, i) => {
    if (!Number.isInteger(status) || status < 100 || status > 599) {
      reader.fail(`health.status[${i}]`, `must be an HTTP status, a whole number from 100 to 599, got ${show(status)}`);
    }
    return status as number;
  });
}

function env(reader: Reader, value: unknown): Record<string, string> {
  const obj = reader.map(value, 'env', null);
  return Object.fromEntries(
    Object.entries(obj).map(([key, raw]) => {
      if (!ENV_KEY.test(key))
        reader.fail(`env.${JSON.stringify(key)}`, `is not a variable name (letters, digits and '_', not starting with a digit)`);
      const where = `env.${key}`;
      if (typeof raw === 'number' && !Number.isFinite(raw)) reader.fail(where, `must be a finite number, got ${show(raw)}`);
      if (typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'boolean') {
        reader.fail(where, `must be a string, number or boolean, got ${show(raw)}`);
      }
      const text = String(raw);
      // Each becomes one line of the app's .env.
      if (/[\n\r\0]/.test(text)) reader.fail(where, `must not contain a line break or NUL, got ${show(text)}`);
      return [key, text];
    }),
  );
}

function deps(reader: Reader, value: unknown, limits: ContractLimits): DepContract[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) reader.fail('deps', `must be a list of { recipe, version? }, got ${show(value)}`);
  const seen = new Set<string>();
  const max = limits.maxDeps ?? DEFAULT_MAX_DEPS;
  return value.map((item, i) => {
    if (i >= max) {
      const named = (item as Obj | null)?.recipe;
      reader.fail(
        `deps[${i}]`,
        `${typeof named === 'string' ? `(recipe ${show(named)}) ` : ''}is one more than CCCI_MAX_DEPS allows (${max})`,
      );
    }
    if (item === null || item === undefined) reader.fail(`deps[${i}]`, `must be a mapping with a recipe, got ${show(item)}`);
    const obj = reader.map(item, `deps[${i}]`, ['recipe', 'version']);
    const { recipe, version } = obj;
    if (typeof recipe !== 'string' || !RECIPE.test(recipe)) {
      reader.fail(`deps[${i}].recipe`, `must be a recipe name, 1-100 characters of a-z, 0-9, '-' and '_', got ${show(recipe)}`);
    }
    if (seen.has(recipe)) reader.fail(`deps[${i}].recipe`, `${show(recipe)} is listed twice`);
    if (recipe === limits.recipe)
      reader.fail(`deps[${i}].recipe`, `${show(recipe)} is the recipe under test: a recipe cannot depend on itself`);
    seen.add(recipe);
    if (version === null || version === undefined) return { recipe };
    if (typeof version !== 'string' || !/^[^\s\p{Cc}]{1,255}$/u.test(version)) {
      reader.fail(`deps[${i}].version`, `must be a version or git ref (a string, no spaces; quote a number), got ${show(version)}`);
    }
    return { recipe, version };
  });
}

// ---------------------------------------------------------------------------------------------
// Writing the contract's env into an app's .env. abra reads that file with godotenv, so a value's
// extent is what godotenv takes it to be: a quoted value ends at the first unescaped same quote,
// lines on if need be; an unquoted one before ` #` or the line's end.

/** A definition's value in an env file: where it starts and ends (an inline comment after it is kept). */
interface Span {
  key: string;
  start: number;
  end: number;
}

const DEFINITION = /^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*/;

/**
 * Every uncommented `KEY=` definition's value span, skipping lines inside a multi-line quoted
 * value. A quoted value left open, or followed by more than a comment, is bad input (godotenv
 * refuses the file too), named by `file` and line.
 */
function definitions(text: string, file: string): Span[] {
  const spans: Span[] = [];
  for (let at = 0; at < text.length; at = nextLine(text, at)) {
    const lineEnd = endOfLine(text, at);
    const match = DEFINITION.exec(text.slice(at, lineEnd));
    if (!match) continue;
    const key = match[1]!;
    // `KEY= # note` is an empty value and a comment: the value goes right after the `=`.
    const comment = text[at + match[0].length] === '#';
    const start = at + (comment ? match[0].trimEnd() : match[0]).length;
    const end = comment ? start : valueEnd(text, start, lineEnd);
    if (end === null) throw envFileError(text, file, start, `the quoted value of ${key} is never closed`);
    const rest = text.slice(end, endOfLine(text, end));
    if (!/^[ \t]*(#.*)?$/.test(rest)) throw envFileError(text, file, end, `unexpected text after the value of ${key}`);
    spans.push({ key, start, end });
    at = end; // a multi-line value's last line is where the next line starts from
  }
  return spans;
}

function envFileError(text: string, file: string, offset: number, why: string): InputError {
  const line = text.slice(0, offset).split(/\r\n|\r|\n/).length;
  return new InputError(`${file}: line ${line}: ${why}`);
}

// A line ends at \n, \r\n or a lone \r: dotenv and godotenv both take a lone \r as a line break.

/** The end of the line `from` is on, before its line break. */
function endOfLine(text: string, from: number): number {
  const found = text.slice(from).search(/[\r\n]/);
  return found < 0 ? text.length : from + found;
}

/** Where the line after the one `from` is on starts. */
function nextLine(text: string, from: number): number {
  const end = endOfLine(text, from);
  return end + (text.startsWith('\r\n', end) ? 2 : 1);
}

/** Where a value starting at `start` ends: past its closing quote (null: none), else before ` #` or the line's end. */
function valueEnd(text: string, start: number, lineEnd: number): number | null {
  const quote = text[start];
  if (quote === '"' || quote === "'" || quote === '`') {
    for (let i = start + 1; i < text.length; i++) {
      if (text[i] === quote && text[i - 1] !== '\\') return i + 1;
    }
    return null;
  }
  const line = text.slice(start, lineEnd);
  const comment = line.search(/[ \t]#/);
  return start + (comment < 0 ? line : line.slice(0, comment)).trimEnd().length;
}

/**
 * `value` as an .env file writes it so that abra (godotenv) and dotenv both read it back as is:
 * bare when it is plain, else single-quoted (literal for both); with a `'` in it, double-quoted,
 * which both read literally only without `"`, `\`, `$` or a backtick. A value neither fits (a `'`
 * and one of those, or a trailing `\`, which would escape the closing quote) is bad input.
 */
export function envValue(key: string, value: string): string {
  if (/^[A-Za-z0-9_./:@%+,=-]*$/.test(value)) return value;
  if (!value.includes("'") && !value.endsWith('\\')) return `'${value}'`;
  if (!/["\\$`]/.test(value)) return `"${value}"`;
  throw new InputError(
    `env.${key}: ${show(value)} cannot be written to an .env file so that abra reads it back as is (it has a ' and one of " \\ $ \`, or ends in \\)`,
  );
}

/**
 * An app's .env text with each `KEY=value` of `keys` set: an existing uncommented definition's
 * value is replaced (every one, so whichever a reader takes is this one; an inline comment after
 * it stays), else a line is appended. Everything else is kept byte for byte. `file` names the
 * text in errors: a key or value that cannot be one .env line, or a malformed quoted value.
 */
export function applyEnvKeys(envFileText: string, keys: Record<string, string>, file = '.env'): string {
  const written = new Map(
    Object.entries(keys).map(([key, value]) => {
      if (!ENV_KEY.test(key)) throw new InputError(`env: ${show(key)} is not a variable name`);
      if (typeof value !== 'string' || /[\n\r\0]/.test(value))
        throw new InputError(`env.${key}: must be one line of text, got ${show(value)}`);
      return [key, envValue(key, value)];
    }),
  );
  const spans = definitions(envFileText, file);
  let text = envFileText;
  for (const { key, start, end } of spans.reverse()) {
    const value = written.get(key);
    // A comment right after the value would read as part of it once there is one: space it off.
    if (value !== undefined) text = text.slice(0, start) + value + (text[end] === '#' && value !== '' ? ' ' : '') + text.slice(end);
  }
  const defined = new Set(spans.map(({ key }) => key));
  const newline = text.includes('\r\n') ? '\r\n' : '\n';
  for (const [key, value] of written) {
    if (defined.has(key)) continue;
    text += `${text === '' || /[\r\n]$/.test(text) ? '' : newline}${key}=${value}${newline}`;
  }
  return text;
}

/** Sets ccci.yml's `env` keys in the app's .env at `envFile` (nothing to do without keys). */
export function setEnvKeys(envFile: string, keys: Record<string, string>): void {
  if (Object.keys(keys).length === 0) return;
  writeFileSync(envFile, applyEnvKeys(readFileSync(envFile, 'utf8'), keys, envFile));
}

/** The contract of the run's tests dir: its ccci.yml, or every default when there is none. */
export function readContract(testsDir: string | null, limits: ContractLimits = {}): CcciContract {
  const file = testsDir === null ? null : join(testsDir, 'ccci.yml');
  if (file === null || !existsSync(file)) return { health: { ...DEFAULT_HEALTH }, env: {}, deps: [] };
  return parseCcciYml(readFileSync(file, 'utf8'), file, limits);
}
