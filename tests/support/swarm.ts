// The e2e world for `cc-ci run`: a real swarm, the test-only abra first on PATH, a canonical
// ~/.abra with the local server, bare recipe repos, and a base domain of its own so that no other
// test's janitor can ever take this test's apps for orphans (and the other way round).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { execa } from 'execa';
import { afterEach, it } from 'vitest';

import { ROOT, cleanup, tempDir } from './processes.js';

const FIXTURES = join(ROOT, 'tests', 'fixtures');
export const IMAGE = 'ccci/busybox:latest';
/** The ingress's CA root, left by .ci/setup-ingress.sh. */
export const INGRESS_CA = '/var/lib/cc-ci-test/ingress-root.pem';

/** Why this machine cannot run the e2e suite, or null when it can. */
export function swarmUnavailable(): string | null {
  const info = spawnSync('docker', ['info', '--format', '{{.Swarm.LocalNodeState}}'], { encoding: 'utf8' });
  if (info.error) return `docker is not runnable: ${info.error.message}`;
  if (info.status !== 0) return `docker info failed: ${(info.stderr || info.stdout).trim()}`;
  if (info.stdout.trim() !== 'active') return `this docker node is not in a swarm (state ${info.stdout.trim()})`;
  if (spawnSync('docker', ['image', 'inspect', IMAGE]).status !== 0) return `image ${IMAGE} is missing`;
  // Recipes join the ingress's network, and health checks trust its CA (.ci/setup-ingress.sh).
  if (spawnSync('docker', ['network', 'inspect', 'proxy']).status !== 0) return 'the ingress network proxy is missing';
  if (!existsSync(INGRESS_CA)) return `the ingress CA ${INGRESS_CA} is missing`;
  return null;
}

/** Under CI a missing swarm is a failure, never a skip. Returns true when the suite can run. */
export function requireSwarm(): boolean {
  const unavailable = swarmUnavailable();
  if (unavailable && process.env.CI) {
    it('has a docker swarm to run on (required under CI)', () => {
      throw new Error(`${unavailable}: run .ci/setup-swarm.sh and .ci/setup-ingress.sh before the suite`);
    });
  }
  return unavailable === null;
}

export interface World {
  base: string;
  home: string;
  runs: string;
  locks: string;
  env: NodeJS.ProcessEnv;
  /** Names (stack, volume, secret, network) that belong to this world's apps. */
  leftovers(): Promise<string[]>;
}

/** The names `docker <args>` lists, one a line. */
export async function names(args: string[]): Promise<string[]> {
  const { stdout } = await execa('docker', args);
  return stdout
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Builds a fresh world for one test; `afterEach` of `useSwarmWorld` removes every trace of it. */
function makeWorld(recipes: string[]): World {
  const root = tempDir('ccci-e2e-');
  const base = `e2e${Math.random().toString(16).slice(2, 8)}.test`;
  const home = join(root, 'home');
  const runs = join(root, 'runs');
  const locks = join(root, 'locks');
  const remote = join(root, 'remote');
  for (const dir of [home, runs, locks, remote]) mkdirSync(dir, { recursive: true });
  for (const recipe of recipes) {
    // A fixture recipe of that name if there is one (ccci-hooks), else the demo under that name.
    const source = existsSync(join(FIXTURES, 'recipes', recipe)) ? recipe : 'ccci-demo';
    execFileSync('bash', [join(FIXTURES, 'make-recipe-repo.sh'), join(remote, recipe), join(FIXTURES, 'recipes', source)], {
      stdio: 'ignore',
    });
  }
  const env: NodeJS.ProcessEnv = {
    HOME: home,
    PATH: `${join(FIXTURES, 'abra')}:${process.env.PATH}`,
    CCCI_TEST_RECIPE_REMOTE_BASE: remote,
    CCCI_RUNS_DIR: runs,
    CCCI_APP_LOCK_DIR: locks,
    CCCI_BASE_DOMAIN: base,
    CCCI_CONVERGE_TIMEOUT_SECONDS: '120',
    // The real ingress .ci/setup-ingress.sh runs, its CA trusted: TLS verified end to end.
    CCCI_INGRESS_CA: INGRESS_CA,
    // The operator's tests dir of this world: empty unless a test fills it (never the host's /etc).
    CCCI_TESTS_DIR: join(root, 'operator-tests'),
  };
  execFileSync('abra', ['server', 'add', '--local'], { env: { ...process.env, ...env }, stdio: 'ignore' });
  const marker = base.replaceAll('.', '_');
  return {
    base,
    home,
    runs,
    locks,
    env,
    leftovers: async () =>
      [
        ...(await names(['stack', 'ls', '--format', '{{.Name}}'])),
        ...(await names(['volume', 'ls', '--format', '{{.Name}}'])),
        ...(await names(['secret', 'ls', '--format', '{{.Name}}'])),
        ...(await names(['network', 'ls', '--format', '{{.Name}}'])),
      ].filter((name) => name.includes(marker)),
  };
}

/** Removes whatever a killed run left of this world's apps. */
async function scrub(world: World): Promise<void> {
  const marker = world.base.replaceAll('.', '_');
  const quiet = { reject: false } as const;
  for (const stack of await names(['stack', 'ls', '--format', '{{.Name}}'])) {
    if (stack.includes(marker)) await execa('docker', ['stack', 'rm', stack], quiet);
  }
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const containers = (await names(['ps', '-a', '--format', '{{.Names}}'])).filter((n) => n.includes(marker));
    if (containers.length === 0) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  for (const volume of (await names(['volume', 'ls', '--format', '{{.Name}}'])).filter((n) => n.includes(marker))) {
    await execa('docker', ['volume', 'rm', '-f', volume], quiet);
  }
  for (const secret of (await names(['secret', 'ls', '--format', '{{.Name}}'])).filter((n) => n.includes(marker))) {
    await execa('docker', ['secret', 'rm', secret], quiet);
  }
  for (const network of (await names(['network', 'ls', '--format', '{{.Name}}'])).filter((n) => n.includes(marker))) {
    await execa('docker', ['network', 'rm', network], quiet);
  }
}

/** A fresh world per test, scrubbed afterwards (helpers reaped first, so nothing re-creates it). */
export function useSwarmWorld(recipes = ['ccci-demo']): () => World {
  let world: World | undefined;
  afterEach(async () => {
    await cleanup();
    if (world) await scrub(world);
    world = undefined;
  }, 120_000);
  return () => (world = makeWorld(recipes));
}

/**
 * An operator tests dir for one run, `{<recipe>: {<file>: <text>}}`: returns the CCCI_TESTS_DIR
 * that hands it to that run. A hook or test gets only the contract's environment, so a knob such
 * as the demo's CCCI_TEST_CUSTOM_SLEEP reaches it through ccci.yml's `env`, like any operator's.
 */
export function operatorTests(world: World, id: string, recipes: Record<string, Record<string, string>>): { CCCI_TESTS_DIR: string } {
  const dir = join(dirname(world.home), `operator-${id}`);
  for (const [recipe, files] of Object.entries(recipes)) {
    mkdirSync(join(dir, recipe), { recursive: true });
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, recipe, name), text, { mode: 0o755 });
  }
  return { CCCI_TESTS_DIR: dir };
}

/** The operator ccci.yml that makes the demo recipes' pause.sh sleep `seconds` in one run. */
export function customSleep(world: World, id: string, recipe: string, seconds: number | string): { CCCI_TESTS_DIR: string } {
  return operatorTests(world, id, { [recipe]: { 'ccci.yml': `env:\n  CCCI_TEST_CUSTOM_SLEEP: "${seconds}"\n` } });
}

export function envFile(world: World, domain: string): string {
  return join(world.home, '.abra', 'servers', 'default', `${domain}.env`);
}

/** The domain `cc-ci run` derives for (recipe, pr, ref) in this world. */
export function domainOf(world: World, recipe: string, pr = '0', ref = ''): string {
  const digest = createHash('sha1').update(`${recipe}|${pr}|${ref}`).digest('hex');
  return `${recipe.slice(0, 4)}-${digest.slice(0, 6)}.${world.base}`;
}

/** The domain `cc-ci run` gives the dependency `dep` of the app at `app` in this world. */
export function depDomainOf(world: World, app: string, dep: string): string {
  const digest = createHash('sha1').update(`${app}|${dep}`).digest('hex');
  return `${dep.replace(/[^a-z0-9]/g, '').slice(0, 4)}-${digest.slice(0, 6)}.${world.base}`;
}

/** The first running container of a domain's app service, or null. */
export async function appContainer(domain: string): Promise<string | null> {
  const stack = domain.replaceAll('.', '_');
  const found = await names([
    'ps',
    '--filter',
    `label=com.docker.swarm.service.name=${stack}_app`,
    '--filter',
    'status=running',
    '--format',
    '{{.Names}}',
  ]);
  return found[0] ?? null;
}
