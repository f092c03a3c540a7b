// A recipe is read from its files parsed as what they are (issue 14 §2): real recipe trees in temp
// dirs, read through runner/run/recipe-files.ts and the recipe.ts calls the run makes.
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in plain strings is compose and .env text under test
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { InputError } from '../../lib/errors.js';
import { backupCapable, declaresSecrets } from '../../runner/run/recipe.js';
import { composeFiles, interpolate, parseEnv, readRecipe } from '../../runner/run/recipe-files.js';
import { ROOT, cleanup, tempDir } from '../support/processes.js';

afterAll(cleanup);

/** A recipe tree with these files (paths relative to it). */
function recipe(files: Record<string, string>): string {
  const dir = tempDir('ccci-recipe-');
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

function refusal(fn: () => unknown): InputError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).not.toContain('\n');
    return error as InputError;
  }
  throw new Error('expected an InputError');
}

const APP = `services:
  app:
    image: nginx
`;

describe('env files', () => {
  it('reads comments, blank lines, export and quotes as an env file, not as text', () => {
    const env = parseEnv(
      ['# SECRET_OLD_VERSION=v1', '', 'export A=1', 'B="two words" # why', "C='$literal'", 'D=v1 # length=32', '  E = spaced  ', 'F='].join(
        '\n',
      ),
    );
    expect(env).toEqual({ A: '1', B: 'two words', C: '$literal', D: 'v1', E: 'spaced', F: '' });
  });

  it('declaresSecrets: a SECRET_*_VERSION key counts, a commented-out one does not', () => {
    expect(declaresSecrets(recipe({ 'compose.yml': APP, '.env.sample': 'SECRET_DB_PASSWORD_VERSION=v1 # length=32\n' }))).toBe(true);
    expect(declaresSecrets(recipe({ 'compose.yml': APP, '.env.sample': '#SECRET_DB_PASSWORD_VERSION=v1\n# SECRET_X_VERSION=v1\n' }))).toBe(
      false,
    );
    expect(declaresSecrets(recipe({ 'compose.yml': APP }))).toBe(false);
  });

  it('declaresSecrets: compose files that declare secrets count', () => {
    const dir = recipe({ 'compose.yml': `${APP}secrets:\n  db_password:\n    external: true\n` });
    expect(declaresSecrets(dir)).toBe(true);
    expect(readRecipe(dir).secrets).toEqual(['db_password']);
  });
});

describe('backupCapable', () => {
  it('a commented-out backupbot label is not backup-capable', () => {
    const dir = recipe({
      'compose.yml': `services:
  app:
    image: nginx
    deploy:
      labels:
        # - "backupbot.backup=true"
        - "traefik.enable=true"
  # backupbot.backup: true
`,
    });
    expect(backupCapable(dir)).toBe(false);
  });

  it('a label elsewhere than deploy.labels, or false, is not backup-capable', () => {
    expect(backupCapable(recipe({ 'compose.yml': `${APP}    labels:\n      backupbot.backup: "true"\n` }))).toBe(false);
    expect(backupCapable(recipe({ 'compose.yml': `${APP}    deploy:\n      labels:\n        backupbot.backup: false\n` }))).toBe(false);
    expect(backupCapable(recipe({ 'compose.yml': `${APP}    environment:\n      - backupbot.backup=true\n` }))).toBe(false);
  });

  it('labels as a list of k=v strings or as a map, true or "true"', () => {
    expect(backupCapable(recipe({ 'compose.yml': `${APP}    deploy:\n      labels:\n        - "backupbot.backup=true"\n` }))).toBe(true);
    expect(backupCapable(recipe({ 'compose.yml': `${APP}    deploy:\n      labels:\n        backupbot.backup: true\n` }))).toBe(true);
    expect(backupCapable(recipe({ 'compose.yml': `${APP}    deploy:\n      labels:\n        backupbot.backup: "true"\n` }))).toBe(true);
  });

  it('one in a second compose file named by COMPOSE_FILE is; one in a file COMPOSE_FILE does not name is not', () => {
    const extra = `services:\n  db:\n    image: postgres\n    deploy:\n      labels: ["backupbot.backup=true"]\n`;
    const named = recipe({ 'compose.yml': APP, 'compose.db.yml': extra, '.env.sample': 'COMPOSE_FILE="compose.yml:compose.db.yml"\n' });
    expect(backupCapable(named)).toBe(true);
    expect(readRecipe(named).services).toEqual(['app', 'db']);
    // The old grep read every compose*.yml in the tree.
    expect(backupCapable(recipe({ 'compose.yml': APP, 'compose.db.yml': extra, '.env.sample': 'COMPOSE_FILE=compose.yml\n' }))).toBe(false);
  });

  it('a label from an interpolated variable, and one a later file turns off', () => {
    const on = `${APP}    deploy:\n      labels:\n        - "backupbot.backup=\${ENABLE_BACKUPS:-true}"\n`;
    expect(backupCapable(recipe({ 'compose.yml': on }))).toBe(true);
    expect(backupCapable(recipe({ 'compose.yml': on, '.env.sample': 'ENABLE_BACKUPS=false\n' }))).toBe(false);
    const off = `services:\n  app:\n    deploy:\n      labels:\n        backupbot.backup: "false"\n`;
    expect(
      backupCapable(recipe({ 'compose.yml': on, 'compose.off.yml': off, '.env.sample': 'COMPOSE_FILE=compose.yml:compose.off.yml\n' })),
    ).toBe(false);
  });

  it('the demo recipe is backup-capable and declares secrets', () => {
    const demo = join(ROOT, 'tests/fixtures/recipes/ccci-demo');
    expect(backupCapable(demo)).toBe(true);
    expect(declaresSecrets(demo)).toBe(true);
    const facts = readRecipe(demo);
    expect(facts.version).toBe('0.1.0+1.0');
    expect(facts.byService.app!.secrets).toEqual(['demo_secret']);
    expect(facts.byService.app!.volumes).toEqual(['data']);
  });
});

describe('compose files', () => {
  it('anchors, aliases and merge keys', () => {
    const dir = recipe({
      'compose.yml': `x-deploy: &deploy
  labels:
    backupbot.backup: "true"
    coop-cloud.\${STACK_NAME}.version: 1.2.3+4.5
x-env: &env
  A: "1"
services:
  app:
    image: nginx
    deploy: *deploy
    environment:
      <<: *env
      B: "2"
  worker:
    image: nginx
    deploy:
      <<: *deploy
      replicas: 2
`,
    });
    const facts = readRecipe(dir);
    expect(facts.services).toEqual(['app', 'worker']);
    expect(facts.byService.app!.environment).toEqual({ A: '1', B: '2' });
    expect(facts.byService.worker!.labels['backupbot.backup']).toBe('true');
    expect(facts.backupCapable).toBe(true);
    expect(facts.version).toBe('1.2.3+4.5');
  });

  it('interpolates ${VAR}, $VAR, ${VAR:-default}, ${VAR-default} and $$ from the env, values only', () => {
    const dir = recipe({
      'compose.yml': `services:
  app:
    image: nginx
    environment:
      - DOMAIN=\${DOMAIN}
      - BARE=$DOMAIN/x
      - UNSET=\${NOPE:-fallback}
      - EMPTY_COLON=\${EMPTY:-fallback}
      - EMPTY_DASH=\${EMPTY-fallback}
      - UNSET_DASH=\${NOPE-fallback}
      - NESTED=\${NOPE:-\${DOMAIN}}
      - DOLLARS=$$DOMAIN costs 5$$
      - MISSING=\${NOPE}
    deploy:
      labels:
        - "coop-cloud.\${STACK_NAME}.version=\${VERSION:-0.0.1}"
`,
      '.env.sample': 'DOMAIN=example.org\nEMPTY=\n',
    });
    const facts = readRecipe(dir);
    expect(facts.byService.app!.environment).toEqual({
      DOMAIN: 'example.org',
      BARE: 'example.org/x',
      UNSET: 'fallback',
      EMPTY_COLON: 'fallback',
      EMPTY_DASH: '',
      UNSET_DASH: 'fallback',
      NESTED: 'example.org',
      DOLLARS: '$DOMAIN costs 5$',
      MISSING: '',
    });
    expect(facts.version).toBe('0.0.1');
    // With the app's env instead of the sample.
    expect(readRecipe(dir, { DOMAIN: 'app.test', STACK_NAME: 'app_test', VERSION: '2.0.0' }).byService.app!.labels).toEqual({
      'coop-cloud.app_test.version': '2.0.0',
    });
  });

  it('interpolate: the compose rules, and null for an invalid template', () => {
    const env = { A: 'a', E: '' };
    expect(interpolate('${A:+alt}|${NOPE:+alt}|${E:+alt}|${E+alt}', env)).toBe('alt|||alt');
    expect(interpolate('${NOPE:?required}', env)).toBe('');
    expect(interpolate('a$$$$b', env)).toBe('a$$b');
    for (const bad of ['x$', '$ x', '${', '${A', '${1}', '${A:*x}', '${NOPE:-${A}']) expect(interpolate(bad, env), bad).toBeNull();
  });

  it('an invalid interpolation names the file and the key', () => {
    const dir = recipe({ 'compose.yml': `${APP}    command: echo 5$\n` });
    expect(refusal(() => readRecipe(dir)).message).toBe(
      `compose.yml: services.app.command invalid interpolation format "echo 5$": you may need to escape any $ with another $ (${join(dir, 'compose.yml')})`,
    );
  });

  it('later files override and extend earlier ones, service by service', () => {
    const dir = recipe({
      'compose.yml': `services:
  app:
    image: nginx
    environment: [A=1, B=1]
    networks: [internal]
    secrets: [one]
    volumes: ["data:/data", "/cache"]
    deploy:
      labels: [x=1, y=1]
  db:
    image: postgres
networks:
  internal:
volumes:
  data:
secrets:
  one: {external: true}
`,
      'compose.extra.yml': `services:
  app:
    environment:
      B: "2"
      C: ~
    networks:
      proxy:
    secrets:
      - source: two
        target: /run/two
    volumes:
      - type: volume
        source: other
        target: /data
    deploy:
      labels:
        y: 2
        z: 3
  cron:
    image: busybox
networks:
  proxy: {external: true}
secrets:
  two: {external: true}
`,
      '.env.sample': 'COMPOSE_FILE="compose.yml:compose.extra.yml"\n',
    });
    const facts = readRecipe(dir);
    expect(facts.composeFiles).toEqual([join(dir, 'compose.yml'), join(dir, 'compose.extra.yml')]);
    expect(facts.services).toEqual(['app', 'db', 'cron']);
    expect(facts.byService.app).toEqual({
      labels: { x: '1', y: '2', z: '3' },
      environment: { A: '1', B: '2', C: null },
      networks: ['internal', 'proxy'],
      secrets: ['one', 'two'],
      // /data is mounted from `other` now (compose merges mounts by target); /cache is anonymous.
      volumes: ['other'],
    });
    expect(facts.networks).toEqual(['internal', 'proxy']);
    expect(facts.secrets).toEqual(['one', 'two']);
    expect(facts.volumes).toEqual(['data']);
  });

  it('COMPOSE_FILE: default compose.yml, colon-separated, empty entries skipped', () => {
    const dir = recipe({ 'compose.yml': APP, 'compose.a.yml': APP });
    expect(composeFiles(dir, {})).toEqual([join(dir, 'compose.yml')]);
    expect(composeFiles(dir, { COMPOSE_FILE: '' })).toEqual([join(dir, 'compose.yml')]);
    expect(composeFiles(dir, { COMPOSE_FILE: 'compose.a.yml::compose.yml:' })).toEqual([
      join(dir, 'compose.a.yml'),
      join(dir, 'compose.yml'),
    ]);
  });

  it('a COMPOSE_FILE entry that is missing is bad input naming it', () => {
    const dir = recipe({ 'compose.yml': APP, '.env.sample': 'COMPOSE_FILE=compose.yml:compose.nope.yml\n' });
    const error = refusal(() => readRecipe(dir));
    expect(error.message).toBe(
      `compose.nope.yml: no such compose file (COMPOSE_FILE="compose.yml:compose.nope.yml") (${join(dir, 'compose.nope.yml')})`,
    );
    expect(error.path).toBe(join(dir, 'compose.nope.yml'));
    expect(refusal(() => backupCapable(recipe({ 'README.md': 'no compose file' }))).message).toMatch(/^compose\.yml: no such compose file/);
  });

  it('bad YAML names the file and the line', () => {
    const dir = recipe({
      'compose.yml': APP,
      'compose.bad.yml': 'services:\n  app:\n    image: [nginx\n  db: {}\n',
      '.env.sample': 'COMPOSE_FILE=compose.yml:compose.bad.yml\n',
    });
    expect(refusal(() => readRecipe(dir)).message).toMatch(
      /^compose\.bad\.yml: YAML syntax error at line 4, column \d+: .* \(.*\/compose\.bad\.yml\)$/,
    );
    const dup = recipe({ 'compose.yml': 'services:\n  app: {}\n  app: {}\n' });
    expect(refusal(() => readRecipe(dup)).message).toMatch(/^compose\.yml: YAML syntax error at line 3, column 3: Map keys must be unique/);
    const twoDocs = recipe({ 'compose.yml': `${APP}---\n${APP}` });
    expect(refusal(() => readRecipe(twoDocs)).message).toMatch(/^compose\.yml: YAML syntax error at line 4, .*one/);
    const alias = recipe({ 'compose.yml': 'services:\n  app: *nope\n' });
    expect(refusal(() => readRecipe(alias)).message).toMatch(/^compose\.yml: bad YAML: Unresolved alias .*nope/);
  });

  it('a billion-laughs file is refused, not expanded', () => {
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 10; i++)
      lines.push(
        `${'abcdefghij'[i]}: &${'abcdefghij'[i]} [${Array(10)
          .fill(`*${'abcdefghij'[i - 1]}`)
          .join(',')}]`,
      );
    const dir = recipe({ 'compose.yml': `x-lol:\n${lines.map((l) => `  ${l}`).join('\n')}\n${APP}` });
    const started = performance.now();
    expect(refusal(() => readRecipe(dir)).message).toMatch(/^compose\.yml: bad YAML: .*alias/i);
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('a wrong type at a key cc-ci reads names the file and the key path', () => {
    const cases: [string, string][] = [
      ['- just a list\n', 'compose.yml: the file must be a mapping of services, networks, ..., got an array'],
      ['services: [app]\n', 'compose.yml: services must be a mapping, got an array'],
      ['services:\n  app: nginx\n', 'compose.yml: services.app must be a mapping, got "nginx"'],
      [
        `${APP}    deploy:\n      labels: 3\n`,
        'compose.yml: services.app.deploy.labels must be a list of "key=value" strings or a mapping, got number 3',
      ],
      [
        `${APP}    deploy:\n      labels: [{a: 1}]\n`,
        'compose.yml: services.app.deploy.labels[0] must be a "key=value" string, got an object',
      ],
      [
        `${APP}    deploy:\n      labels: {a: [1]}\n`,
        'compose.yml: services.app.deploy.labels.a must be a string, number or boolean, got an array',
      ],
      [`${APP}    secrets: [{target: x}]\n`, 'compose.yml: services.app.secrets[0] is not a valid entry: an object'],
      ['networks: [a]\n', 'compose.yml: networks must be a mapping, got an array'],
    ];
    for (const [text, message] of cases) {
      const dir = recipe({ 'compose.yml': text });
      expect(refusal(() => readRecipe(dir)).message, text).toBe(`${message} (${join(dir, 'compose.yml')})`);
    }
  });

  it('an empty compose file, and a service with no keys, are read as empty', () => {
    expect(readRecipe(recipe({ 'compose.yml': '' })).services).toEqual([]);
    const facts = readRecipe(recipe({ 'compose.yml': 'services:\n  app:\n' }));
    expect(facts.byService.app).toEqual({ labels: {}, environment: {}, networks: [], secrets: [], volumes: [] });
    expect(facts.backupCapable || facts.declaresSecrets).toBe(false);
  });
});
