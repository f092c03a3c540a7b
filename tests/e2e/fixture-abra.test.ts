// The test-only abra (tests/fixtures/abra) and the ccci-demo recipe, on the real swarm: every call
// the runner will make, in the order it makes them, against real docker. Under CI a missing swarm
// fails this file (.ci/setup-swarm.sh must have run); elsewhere the file is skipped.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURES = join(ROOT, 'tests', 'fixtures');
const ABRA_BIN = join(FIXTURES, 'abra');
const RECIPE = 'ccci-demo';
const IMAGE = 'ccci/busybox:latest';
const STEP_MS = 60_000;

/** Why this machine cannot run the suite, or null when it can. */
function swarmUnavailable(): string | null {
  const info = spawnSync('docker', ['info', '--format', '{{.Swarm.LocalNodeState}}'], { encoding: 'utf8' });
  if (info.error) return `docker is not runnable: ${info.error.message}`;
  if (info.status !== 0) return `docker info failed: ${(info.stderr || info.stdout).trim()}`;
  if (info.stdout.trim() !== 'active') return `this docker node is not in a swarm (state ${info.stdout.trim()})`;
  const image = spawnSync('docker', ['image', 'inspect', IMAGE], { encoding: 'utf8' });
  if (image.status !== 0) return `image ${IMAGE} is missing`;
  return null;
}

const unavailable = swarmUnavailable();

if (unavailable && process.env.CI) {
  it('has a docker swarm to run on (required under CI)', () => {
    throw new Error(`${unavailable}: run .ci/setup-swarm.sh before the suite`);
  });
}

describe.skipIf(unavailable !== null)('test-only abra on the real swarm', () => {
  // Not a run-app name (<1-4 chars>-<6 hex>.<base>): a runner janitor on the same host must never
  // take this app for a dead run's orphan.
  const domain = `ccci-fixture-${Math.random().toString(16).slice(2, 10)}.test`;
  const stack = domain.replace(/\./g, '_');
  let work: string;
  let abraDir: string;
  let env: NodeJS.ProcessEnv;

  async function abra(...args: string[]) {
    const result = await execa('abra', args, { env, reject: false, timeout: STEP_MS });
    if (result.exitCode !== 0) {
      throw new Error(`abra ${args.join(' ')} exited ${result.exitCode}:\n${result.stderr}\n${result.stdout}`);
    }
    return result;
  }

  async function docker(...args: string[]): Promise<string> {
    return (await execa('docker', args, { timeout: STEP_MS })).stdout.trim();
  }

  async function names(kind: 'service' | 'volume' | 'secret'): Promise<string[]> {
    const out = await docker(kind, 'ls', '--format', '{{.Name}}');
    return out.split('\n').filter((name) => name.startsWith(`${stack}_`));
  }

  async function appContainer(): Promise<string> {
    const id = await docker('ps', '-q', '--filter', `label=com.docker.swarm.service.name=${stack}_app`, '--filter', 'status=running');
    expect(id, `a running task container of ${stack}_app`).not.toBe('');
    return id.split('\n')[0]!;
  }

  async function page(): Promise<string> {
    return docker('exec', await appContainer(), 'wget', '-q', '-O', '-', 'http://127.0.0.1/');
  }

  async function readMarker(): Promise<string> {
    return docker('exec', await appContainer(), 'cat', '/var/www/marker');
  }

  async function writeMarker(value: string): Promise<void> {
    await docker('exec', await appContainer(), 'sh', '-c', 'printf %s "$1" > /var/www/marker', 'sh', value);
  }

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'ccci-fixture-abra-'));
    abraDir = join(work, 'abra');
    env = {
      PATH: `${ABRA_BIN}:${process.env.PATH ?? ''}`,
      ABRA_DIR: abraDir,
      CCCI_TEST_RECIPE_REMOTE_BASE: join(work, 'remotes'),
      CCCI_TEST_ABRA_LOG: join(work, 'abra.log'),
    };
  });

  // Runs whatever happened above: the app's stack, volumes and secrets go, then the temp dir.
  afterAll(async () => {
    const problems: string[] = [];
    const quiet = { reject: false, timeout: STEP_MS } as const;
    if ((await names('service').catch(() => [])).length > 0) await execa('docker', ['stack', 'rm', stack], quiet);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const left = await execa('docker', ['ps', '-aq', '--filter', `label=com.docker.stack.namespace=${stack}`], quiet);
      if (left.stdout.trim() === '' || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    for (const volume of await names('volume').catch(() => [])) {
      const removed = await execa('docker', ['volume', 'rm', '-f', volume], quiet);
      if (removed.exitCode !== 0) problems.push(`volume ${volume}: ${removed.stderr}`);
    }
    for (const secret of await names('secret').catch(() => [])) {
      const removed = await execa('docker', ['secret', 'rm', secret], quiet);
      if (removed.exitCode !== 0) problems.push(`secret ${secret}: ${removed.stderr}`);
    }
    await execa('docker', ['network', 'rm', `${stack}_default`], quiet);
    if (work) rmSync(work, { recursive: true, force: true });
    if (problems.length > 0) throw new Error(`cleanup left: ${problems.join('; ')}`);
  }, STEP_MS);

  it('fetches the recipe, creates the app and generates its secret', { timeout: STEP_MS }, async () => {
    await execa(join(FIXTURES, 'make-recipe-repo.sh'), [join(work, 'remotes', RECIPE)]);
    await abra('server', 'add', '--local');
    await abra('recipe', 'fetch', RECIPE, '--no-input');
    expect(existsSync(join(abraDir, 'recipes', RECIPE, 'compose.yml'))).toBe(true);

    await abra('app', 'new', RECIPE, '0.1.0+1.0', '--server', 'default', '--domain', domain, '--no-input');
    const envFile = readFileSync(join(abraDir, 'servers', 'default', `${domain}.env`), 'utf8');
    expect(envFile).toMatch(/^TYPE=ccci-demo:0\.1\.0\+1\.0$/m);
    expect(envFile).toMatch(new RegExp(`^DOMAIN=${domain.replace(/\./g, '\\.')}$`, 'm'));
    expect(envFile).toMatch(/^SECRET_DEMO_SECRET_VERSION=v1/m);

    await abra('app', 'secret', 'generate', domain, '--all', '--no-input');
    expect(await names('secret')).toEqual([`${stack}_demo_secret_v1`]);

    const listed = JSON.parse((await abra('app', 'ls', '--machine')).stdout);
    expect(listed.default.apps).toEqual([expect.objectContaining({ server: 'default', recipe: RECIPE, appName: domain, domain })]);
  });

  it('deploys a pinned version that converges to 1/1 and answers over HTTP', { timeout: STEP_MS }, async () => {
    await abra('app', 'deploy', domain, '0.1.0+1.0', '--no-input');
    expect(await docker('service', 'ls', '--filter', `name=${stack}_app`, '--format', '{{.Replicas}}')).toBe('1/1');
    expect(await page()).toBe('ccci-demo 0.1.0+1.0');

    // The recipe's own custom test, as the runner's custom stage runs it.
    const custom = await execa('sh', [join(FIXTURES, 'recipes', RECIPE, 'tests', 'http.sh')], {
      env: { STACK_NAME: stack, DOMAIN: domain, EXPECT: 'ccci-demo 0.1.0+1.0' },
      reject: false,
    });
    expect(custom.exitCode, custom.stderr).toBe(0);

    // Like abra: a second deploy of a deployed app needs --force (or --chaos).
    const again = await execa('abra', ['app', 'deploy', domain, '--no-input'], { env, reject: false });
    expect(again.exitCode).not.toBe(0);
    expect(again.stderr).toContain(`${domain} is already deployed`);

    const status = JSON.parse((await abra('app', 'ls', '--machine', '--status')).stdout);
    expect(status.default.apps[0]).toMatchObject({ appName: domain, status: 'deployed', version: '0.1.0+1.0' });
  });

  it('upgrades in place to the next version, keeping the volume data', { timeout: STEP_MS }, async () => {
    await writeMarker('written-on-0.1.0');
    await abra('app', 'deploy', domain, '0.2.0+1.1', '--force', '--no-input');
    expect(await page()).toBe('ccci-demo 0.2.0+1.1');
    expect(await readMarker()).toBe('written-on-0.1.0');
    expect(readFileSync(join(abraDir, 'servers', 'default', `${domain}.env`), 'utf8')).toMatch(/^TYPE=ccci-demo:0\.2\.0\+1\.1$/m);
  });

  it('backs the volume up and restores it through docker', { timeout: STEP_MS }, async () => {
    await writeMarker('backed-up');
    const created = await abra('app', 'backup', 'create', domain, '--no-input');
    const snapshot = created.stdout.trim();
    expect(readdirSync(join(abraDir, 'backups', domain))).toEqual([snapshot]);

    await writeMarker('overwritten-after-backup');
    await abra('app', 'restore', domain, '--no-input');
    expect(await readMarker()).toBe('backed-up');
  });

  it('undeploys and removes the app, leaving nothing behind', { timeout: STEP_MS }, async () => {
    // Like abra: a deployed app cannot be removed.
    const early = await execa('abra', ['app', 'remove', domain, '--no-input', '--force'], { env, reject: false });
    expect(early.exitCode).not.toBe(0);
    expect(early.stderr).toContain('is still deployed');

    await abra('app', 'undeploy', domain, '--no-input');
    await abra('app', 'remove', domain, '--no-input', '--force');

    expect(await names('service')).toEqual([]);
    expect(await names('volume')).toEqual([]);
    expect(await names('secret')).toEqual([]);
    expect(await docker('network', 'ls', '-q', '--filter', `name=${stack}_`)).toBe('');
    expect(existsSync(join(abraDir, 'servers', 'default', `${domain}.env`))).toBe(false);
    expect(JSON.parse((await abra('app', 'ls', '--machine')).stdout)).toEqual({});

    // Every invocation was logged, in order, with the ABRA_DIR it ran under.
    const log = readFileSync(join(work, 'abra.log'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(log.every((entry) => entry.ABRA_DIR === abraDir)).toBe(true);
    const commands = log.map((entry) => entry.argv.slice(0, 2).join(' '));
    expect(commands.indexOf('recipe fetch')).toBeLessThan(commands.indexOf('app new'));
    expect(commands.indexOf('app new')).toBeLessThan(commands.indexOf('app deploy'));
    expect(commands.lastIndexOf('app undeploy')).toBeLessThan(commands.lastIndexOf('app remove'));
  });
});
