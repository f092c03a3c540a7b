// ccci.yml, the recipe's CI contract (issue 14 §2): its defaults, every key's bad types and values
// refused as one line naming the file, the key path and why, and the contract's env written into
// an app's .env without disturbing the rest of it. Files are real, in temp dirs.
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in plain strings is compose and .env text under test
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { InputError } from '../../lib/errors.js';
import { applyEnvKeys, DEFAULT_HEALTH, parseCcciYml } from '../../runner/run/contract.js';
import { parseEnv } from '../../runner/run/recipe-files.js';
import { cleanup, tempDir } from '../support/processes.js';

afterAll(cleanup);

/** A real ccci.yml in a temp dir, parsed as the run will: its text and its path. */
function contractFile(text: string): { file: string; parse: () => ReturnType<typeof parseCcciYml> } {
  const file = join(tempDir('ccci-contract-'), 'ccci.yml');
  writeFileSync(file, text);
  return { file, parse: () => parseCcciYml(readFileSync(file, 'utf8'), file) };
}

/** The one-line message `text` is refused with, its `(path)` suffix checked and dropped. */
function refused(text: string): string {
  const { file, parse } = contractFile(text);
  try {
    parse();
  } catch (error) {
    expect(error, text).toBeInstanceOf(InputError);
    const { message } = error as InputError;
    expect(message, text).not.toMatch(/[\r\n]/);
    expect(message.endsWith(` (${file})`), message).toBe(true);
    expect((error as InputError).path).toBe(file);
    return message.slice(0, -` (${file})`.length);
  }
  throw new Error(`accepted: ${JSON.stringify(text)}`);
}

const DEFAULTS = { health: { path: '/', status: null, timeoutSeconds: 300 }, env: {}, deps: [] };

describe('parseCcciYml', () => {
  it('an empty file, {}, comments only or empty sections give all the defaults', () => {
    for (const text of ['', '{}', '# nothing here\n', '---\n', 'health:\nenv:\ndeps:\n', 'health: {}\nenv: {}\ndeps: []\n']) {
      expect(contractFile(text).parse(), JSON.stringify(text)).toEqual(DEFAULTS);
    }
    expect(DEFAULT_HEALTH).toEqual(DEFAULTS.health);
  });

  it('reads every key', () => {
    const { parse } = contractFile(`# the app answers on /health once it is up
health:
  path: /health?full=1
  status: [200, 204]
  timeoutSeconds: 600
env:
  ADMIN_EMAIL: ci@example.org
  WORKERS: 4
  DEBUG: false
  EMPTY: ""
deps:
  - recipe: mariadb
    version: 1.2.0+10.11.6
  - recipe: redis
`);
    expect(parse()).toEqual({
      health: { path: '/health?full=1', status: [200, 204], timeoutSeconds: 600 },
      env: { ADMIN_EMAIL: 'ci@example.org', WORKERS: '4', DEBUG: 'false', EMPTY: '' },
      deps: [{ recipe: 'mariadb', version: '1.2.0+10.11.6' }, { recipe: 'redis' }],
    });
  });

  it('anchors and merge keys work as in any YAML file', () => {
    const { parse } = contractFile(
      'env:\n  <<: &base {A: 1, B: 1}\n  B: 2\ndeps:\n  - {recipe: a, version: &v "1.0"}\n  - {recipe: b, version: *v}\n',
    );
    expect(parse()).toEqual({
      ...DEFAULTS,
      env: { A: '1', B: '2' },
      deps: [
        { recipe: 'a', version: '1.0' },
        { recipe: 'b', version: '1.0' },
      ],
    });
  });

  it('the brief’s example message', () => {
    expect(refused('health:\n  timeoutSeconds: 5m\n')).toBe(
      'ccci.yml: health.timeoutSeconds must be a whole number of seconds from 1 to 3600, got "5m"',
    );
  });

  it('health: each key’s bad types and values', () => {
    const cases: [string, string][] = [
      ['health: /up', 'ccci.yml: health must be a mapping of path, status, timeoutSeconds, got "/up"'],
      ['health: [1]', 'ccci.yml: health must be a mapping of path, status, timeoutSeconds, got an array'],
      ['health: {path: up}', `ccci.yml: health.path must be a URL path starting with '/' (no spaces), got "up"`],
      ['health: {path: 1}', `ccci.yml: health.path must be a URL path starting with '/' (no spaces), got number 1`],
      ['health: {path: "/a b"}', `ccci.yml: health.path must be a URL path starting with '/' (no spaces), got "/a b"`],
      ['health: {status: 200}', 'ccci.yml: health.status must be a non-empty list of HTTP statuses, got number 200'],
      ['health: {status: []}', 'ccci.yml: health.status must be a non-empty list of HTTP statuses, got an array'],
      ['health: {status: [200, "302"]}', 'ccci.yml: health.status[1] must be an HTTP status, a whole number from 100 to 599, got "302"'],
      ['health: {status: [99]}', 'ccci.yml: health.status[0] must be an HTTP status, a whole number from 100 to 599, got number 99'],
      ['health: {status: [600]}', 'ccci.yml: health.status[0] must be an HTTP status, a whole number from 100 to 599, got number 600'],
      ['health: {status: [200.5]}', 'ccci.yml: health.status[0] must be an HTTP status, a whole number from 100 to 599, got number 200.5'],
      ['health: {timeoutSeconds: 0}', 'ccci.yml: health.timeoutSeconds must be a whole number of seconds from 1 to 3600, got number 0'],
      [
        'health: {timeoutSeconds: 3601}',
        'ccci.yml: health.timeoutSeconds must be a whole number of seconds from 1 to 3600, got number 3601',
      ],
      ['health: {timeoutSeconds: 1.5}', 'ccci.yml: health.timeoutSeconds must be a whole number of seconds from 1 to 3600, got number 1.5'],
      ['health: {timeoutSeconds: "60"}', 'ccci.yml: health.timeoutSeconds must be a whole number of seconds from 1 to 3600, got "60"'],
      [
        'health: {timeoutSeconds: true}',
        'ccci.yml: health.timeoutSeconds must be a whole number of seconds from 1 to 3600, got boolean true',
      ],
    ];
    for (const [text, message] of cases) expect(refused(text), text).toBe(message);
    // The bounds themselves are fine.
    expect(contractFile('health: {status: [100, 599], timeoutSeconds: 1}').parse().health).toEqual({
      path: '/',
      status: [100, 599],
      timeoutSeconds: 1,
    });
    expect(contractFile('health: {timeoutSeconds: 3600}').parse().health.timeoutSeconds).toBe(3600);
  });

  it('env: each key’s bad types and values', () => {
    const cases: [string, string][] = [
      ['env: [A=1]', 'ccci.yml: env must be a mapping, got an array'],
      ['env: A=1', 'ccci.yml: env must be a mapping, got "A=1"'],
      ['env: {1A: x}', `ccci.yml: env."1A" is not a variable name (letters, digits and '_', not starting with a digit)`],
      ['env: {"A-B": x}', `ccci.yml: env."A-B" is not a variable name (letters, digits and '_', not starting with a digit)`],
      ['env: {"A\\nB": x}', `ccci.yml: env."A\\nB" is not a variable name (letters, digits and '_', not starting with a digit)`],
      ['env: {A: [1]}', 'ccci.yml: env.A must be a string, number or boolean, got an array'],
      ['env: {A: {b: 1}}', 'ccci.yml: env.A must be a string, number or boolean, got an object'],
      ['env: {A: ~}', 'ccci.yml: env.A must be a string, number or boolean, got null'],
      ['env: {A: .inf}', 'ccci.yml: env.A must be a finite number, got number Infinity'],
      ['env: {A: "x\\ny"}', 'ccci.yml: env.A must not contain a line break or NUL, got "x\\ny"'],
      ['env: {A: "x\\ry"}', 'ccci.yml: env.A must not contain a line break or NUL, got "x\\ry"'],
      ['env: {A: "x\\0y"}', 'ccci.yml: env.A must not contain a line break or NUL, got "x\\u0000y"'],
      ['env:\n  A: |\n    two\n    lines\n', 'ccci.yml: env.A must not contain a line break or NUL, got "two\\nlines\\n"'],
    ];
    for (const [text, message] of cases) expect(refused(text), text).toBe(message);
  });

  it('deps: each key’s bad types and values', () => {
    const cases: [string, string][] = [
      ['deps: mariadb', 'ccci.yml: deps must be a list of { recipe, version? }, got "mariadb"'],
      ['deps: {recipe: mariadb}', 'ccci.yml: deps must be a list of { recipe, version? }, got an object'],
      ['deps: [mariadb]', 'ccci.yml: deps[0] must be a mapping of recipe, version, got "mariadb"'],
      ['deps: [~]', 'ccci.yml: deps[0] must be a mapping with a recipe, got null'],
      [
        'deps: [{version: "1.0"}]',
        `ccci.yml: deps[0].recipe must be a recipe name, 1-100 characters of a-z, 0-9, '-' and '_', got undefined`,
      ],
      [
        'deps: [{recipe: ../etc}]',
        `ccci.yml: deps[0].recipe must be a recipe name, 1-100 characters of a-z, 0-9, '-' and '_', got "../etc"`,
      ],
      [
        'deps: [{recipe: MariaDB}]',
        `ccci.yml: deps[0].recipe must be a recipe name, 1-100 characters of a-z, 0-9, '-' and '_', got "MariaDB"`,
      ],
      [
        `deps: [{recipe: ${'a'.repeat(101)}}]`,
        `ccci.yml: deps[0].recipe must be a recipe name, 1-100 characters of a-z, 0-9, '-' and '_', got "${'a'.repeat(101)}"`,
      ],
      ['deps: [{recipe: 7}]', `ccci.yml: deps[0].recipe must be a recipe name, 1-100 characters of a-z, 0-9, '-' and '_', got number 7`],
      ['deps: [{recipe: a}, {recipe: a}]', 'ccci.yml: deps[1].recipe "a" is listed twice'],
      [
        'deps: [{recipe: a, version: 1.0}]',
        'ccci.yml: deps[0].version must be a version or git ref (a string, no spaces; quote a number), got number 1',
      ],
      [
        'deps: [{recipe: a, version: ""}]',
        'ccci.yml: deps[0].version must be a version or git ref (a string, no spaces; quote a number), got ""',
      ],
      [
        'deps: [{recipe: a, version: "1 2"}]',
        'ccci.yml: deps[0].version must be a version or git ref (a string, no spaces; quote a number), got "1 2"',
      ],
    ];
    for (const [text, message] of cases) expect(refused(text), text).toBe(message);
    expect(contractFile('deps: [{recipe: a_b-1, version: "1.0"}, {recipe: b, version: ~}]').parse().deps).toEqual([
      { recipe: 'a_b-1', version: '1.0' },
      { recipe: 'b' },
    ]);
  });

  it('deps: the recipe under test itself, or more than CCCI_MAX_DEPS, is refused naming the entry', () => {
    const file = join(tempDir('ccci-contract-'), 'ccci.yml');
    const message = (text: string, limits: Parameters<typeof parseCcciYml>[2]): string => {
      try {
        parseCcciYml(text, file, limits);
      } catch (error) {
        expect(error).toBeInstanceOf(InputError);
        return (error as Error).message.replace(` (${file})`, '');
      }
      throw new Error(`accepted: ${text}`);
    };
    expect(message('deps: [{recipe: a}, {recipe: me}]', { recipe: 'me' })).toBe(
      'ccci.yml: deps[1].recipe "me" is the recipe under test: a recipe cannot depend on itself',
    );
    const six = `deps: [${['a', 'b', 'c', 'd', 'e', 'f'].map((r) => `{recipe: ${r}}`).join(', ')}]`;
    expect(message(six, {})).toBe('ccci.yml: deps[5] (recipe "f") is one more than CCCI_MAX_DEPS allows (5)');
    expect(message('deps: [{recipe: a}]', { maxDeps: 0 })).toBe('ccci.yml: deps[0] (recipe "a") is one more than CCCI_MAX_DEPS allows (0)');
    expect(parseCcciYml(six, file, { recipe: 'g', maxDeps: 6 }).deps).toHaveLength(6);
  });

  it('unknown keys at each level', () => {
    expect(refused('healthcheck: {}')).toBe('ccci.yml: healthcheck is not a known key (known: health, env, deps)');
    expect(refused('health: {timeout: 5}')).toBe('ccci.yml: health.timeout is not a known key (known: path, status, timeoutSeconds)');
    expect(refused('deps: [{recipe: a, ref: main}]')).toBe('ccci.yml: deps[0].ref is not a known key (known: recipe, version)');
    expect(refused('"a b": 1')).toBe('ccci.yml: "a b" is not a known key (known: health, env, deps)');
    expect(refused('__proto__: {}')).toBe('ccci.yml: __proto__ is not a known key (known: health, env, deps)');
  });

  it('the file must be one mapping', () => {
    expect(refused('- health')).toBe('ccci.yml: the file must be a mapping of health, env, deps, got an array');
    expect(refused('just text')).toBe('ccci.yml: the file must be a mapping of health, env, deps, got "just text"');
    expect(refused('{}\n---\n{}\n')).toBe(
      'ccci.yml: YAML syntax error at line 2, column 1: a second YAML document starts here; the file must hold one',
    );
  });

  it('a syntax error names the line', () => {
    expect(refused('health:\n  path: /\n  status: [200\nenv: {}\n')).toMatch(/^ccci\.yml: YAML syntax error at line 4, column 1: /);
    expect(refused('env:\n  A: 1\n  A: 2\n')).toBe('ccci.yml: YAML syntax error at line 3, column 3: Map keys must be unique');
    expect(refused('health:\n\tpath: /\n')).toMatch(/^ccci\.yml: YAML syntax error at line 2, column 1: Tabs are not allowed/);
    expect(refused('env: {A: "\\q"}')).toMatch(/^ccci\.yml: YAML syntax error at line 1, column \d+: Invalid escape sequence/);
    expect(refused('health: *nowhere')).toBe('ccci.yml: bad YAML: Unresolved alias (the anchor must be set before the alias): nowhere');
  });

  it('a file named by a relative path is named once', () => {
    expect(() => parseCcciYml('health: 1', 'ccci.yml')).toThrow(
      /^ccci\.yml: health must be a mapping of path, status, timeoutSeconds, got number 1$/,
    );
  });
});

describe('applyEnvKeys', () => {
  const APP_ENV = [
    '# the app',
    'TYPE=demo',
    '',
    '## Domain aliases',
    '#EXTRA_DOMAINS=ccci.example',
    '  export DOMAIN=demo.example.org',
    'SECRET_X_VERSION=v1 # length=32',
    'NOTE="two',
    'TYPE=lines"',
    'TIMEOUT = 120',
    '',
  ].join('\n');

  it('replaces an uncommented definition, keeping comments, export and an inline comment; appends the rest', () => {
    const out = applyEnvKeys(APP_ENV, { DOMAIN: 'x.test', SECRET_X_VERSION: 'v2', TIMEOUT: '300', EXTRA_DOMAINS: 'a.test', NEW: 'value' });
    expect(out).toBe(
      [
        '# the app',
        'TYPE=demo',
        '',
        '## Domain aliases',
        '#EXTRA_DOMAINS=ccci.example',
        '  export DOMAIN=x.test',
        'SECRET_X_VERSION=v2 # length=32',
        'NOTE="two',
        'TYPE=lines"',
        'TIMEOUT = 300',
        'EXTRA_DOMAINS=a.test',
        'NEW=value',
        '',
      ].join('\n'),
    );
    expect(parseEnv(out)).toMatchObject({
      DOMAIN: 'x.test',
      SECRET_X_VERSION: 'v2',
      TIMEOUT: '300',
      EXTRA_DOMAINS: 'a.test',
      NEW: 'value',
      TYPE: 'demo',
    });
  });

  it('a line inside a multi-line quoted value is not a definition', () => {
    const out = applyEnvKeys(APP_ENV, { TYPE: 'other' });
    expect(out).toBe(APP_ENV.replace('TYPE=demo', 'TYPE=other'));
    expect(parseEnv(out).NOTE).toBe('two\nTYPE=lines');
  });

  it('replaces a quoted value whole, and every definition of the key', () => {
    expect(applyEnvKeys('A="old value" # c\nB=1\nA=\'again\'\n', { A: 'new' })).toBe('A=new # c\nB=1\nA=new\n');
  });

  it('quotes values that need it, so both readers get them back as they are', () => {
    const values = [
      '',
      'plain-1.2_3:/x@y%z+,=',
      'two words',
      '$HOME',
      '${X}',
      'a#b',
      ' #c',
      "it's",
      'back`tick',
      'q"uote',
      'back\\slash',
      'é',
    ];
    for (const value of values) {
      const out = applyEnvKeys('# keep\n', { V: value });
      expect(out.startsWith('# keep\nV='), value).toBe(true);
      expect(parseEnv(out).V, `${value} -> ${out}`).toBe(value);
    }
    expect(applyEnvKeys('', { A: 'two words', B: '$X', C: "it's", D: 'x' })).toBe("A='two words'\nB='$X'\nC=\"it's\"\nD=x\n");
    expect(() => applyEnvKeys('', { A: `it's $HOME` })).toThrow(InputError);
    // A trailing backslash would escape the closing quote.
    expect(() => applyEnvKeys('', { A: 'C:\\dir\\' })).toThrow(InputError);
  });

  it('keeps the file’s line endings and a missing final newline', () => {
    expect(applyEnvKeys('A=1', { B: '2' })).toBe('A=1\nB=2\n');
    expect(applyEnvKeys('A=1\r\nB=2\r\n', { A: '3', C: '4' })).toBe('A=3\r\nB=2\r\nC=4\r\n');
    expect(applyEnvKeys('', {})).toBe('');
    expect(applyEnvKeys('A=1\n# x\n', {})).toBe('A=1\n# x\n');
  });

  it('an empty value before a comment gets the new value before the comment', () => {
    expect(applyEnvKeys('A= # length=32\nB=#x\n', { A: 'v2', B: 'y' })).toBe('A=v2 # length=32\nB=y #x\n');
    expect(applyEnvKeys('A=v1 # length=32\n', { A: '' })).toBe('A= # length=32\n');
    expect(parseEnv(applyEnvKeys('A= # length=32\n', { A: 'v2' })).A).toBe('v2');
  });

  it('a malformed quoted value is refused with the file and line, as abra refuses it', () => {
    expect(() => applyEnvKeys('A=1\nB="open\nC=2\n', { C: '3' }, '/app/.env')).toThrow(
      /^\/app\/\.env: line 2: the quoted value of B is never closed$/,
    );
    expect(() => applyEnvKeys("A='x'y\n", { B: '1' })).toThrow(/^\.env: line 1: unexpected text after the value of A$/);
    expect(() => applyEnvKeys('A="x\\"\n', { B: '1' })).toThrow(InputError);
  });

  it('a lone CR ends a line, as both readers take it', () => {
    expect(applyEnvKeys('A=1\rB=2', { B: '3', C: '4' })).toBe('A=1\rB=3\nC=4\n');
    expect(applyEnvKeys('A=1\r', { C: '4' })).toBe('A=1\rC=4\n');
  });

  it('refuses a key or value that cannot be one line of an .env', () => {
    expect(() => applyEnvKeys('', { 'A B': 'x' })).toThrow(InputError);
    expect(() => applyEnvKeys('', { A: 'x\ny' })).toThrow(InputError);
  });

  it('writes what parseCcciYml read, into a real .env file', () => {
    const dir = tempDir('ccci-contract-');
    writeFileSync(join(dir, '.env'), APP_ENV);
    const { env } = contractFile('env:\n  DOMAIN: ci.test\n  WORKERS: 4\n  GREETING: hello world\n').parse();
    writeFileSync(join(dir, '.env'), applyEnvKeys(readFileSync(join(dir, '.env'), 'utf8'), env));
    const text = readFileSync(join(dir, '.env'), 'utf8');
    expect(parseEnv(text)).toMatchObject({
      DOMAIN: 'ci.test',
      WORKERS: '4',
      GREETING: 'hello world',
      TYPE: 'demo',
      SECRET_X_VERSION: 'v1',
    });
    expect(text.startsWith('# the app\nTYPE=demo\n\n## Domain aliases\n#EXTRA_DOMAINS=ccci.example\n  export DOMAIN=ci.test\n')).toBe(true);
  });
});
