// The quick lane's warm app of the demo recipe, for the suites that test the lane
// (docs/recipes.md#the-quick-lane): made as an operator would, checked as the lane promises to leave
// it, and a PR head of the recipe served from a file:// forge for a run to test.
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { execa } from 'execa';
import { expect } from 'vitest';

import { tempDir } from './processes.js';
import { appContainer, envFile, type World } from './swarm.js';

/** A file in the warm app's volume: its data, which every rollback must restore. */
export const MARKER = '/var/www/.warm-marker';

/**
 * The world's warm app of the demo recipe, at `version`, made as an operator would, with MARKER
 * reading `warm-data`; `settings` are added to its .env before it deploys (DEMO_BACKUP=false, say).
 */
export async function warmApp(world: World, version: string, settings: Record<string, string> = {}): Promise<string> {
  const domain = `warm-demo.${world.base}`;
  const env = { ...process.env, ...world.env };
  await execa('abra', ['recipe', 'fetch', 'ccci-demo', '--no-input'], { env });
  await execa('abra', ['app', 'new', 'ccci-demo', version, '--server', 'default', '--domain', domain, '--secrets', '--no-input'], { env });
  appendFileSync(
    envFile(world, domain),
    Object.entries(settings)
      .map(([key, value]) => `${key}=${value}\n`)
      .join(''),
  );
  await execa('abra', ['app', 'deploy', domain, '--no-input'], { env });
  await execa('docker', ['exec', (await appContainer(domain))!, 'sh', '-c', `echo warm-data > ${MARKER}`]);
  return domain;
}

/** `<runs>/warm/<domain>.json`: the quick lane's recovery record of the warm app. */
export function warmRecordPath(world: World, domain: string): string {
  return join(world.runs, 'warm', `${domain}.json`);
}

/**
 * The warm app is back as it was: `version` deployed and in its .env, its data, its page, no
 * record. `context` (a run's log, say) goes with any failure.
 */
export async function assertWarmAsItWas(world: World, domain: string, version: string, context = ''): Promise<void> {
  const stack = domain.replaceAll('.', '_');
  const { stdout: labels } = await execa('docker', [
    'service',
    'inspect',
    `${stack}_app`,
    '--format',
    `{{index .Spec.Labels "coop-cloud.${stack}.version"}}`,
  ]);
  expect(labels.trim(), context).toBe(version);
  expect(readFileSync(envFile(world, domain), 'utf8'), context).toMatch(
    new RegExp(`^TYPE=ccci-demo:${version.replaceAll('.', '\\.').replace('+', '\\+')}$`, 'm'),
  );
  const container = await appContainer(domain);
  expect(container, `${domain} has no running container\n${context}`).not.toBeNull();
  expect((await execa('docker', ['exec', container!, 'cat', MARKER])).stdout, context).toBe('warm-data');
  expect((await execa('docker', ['exec', container!, 'wget', '-q', '-O', '-', 'http://127.0.0.1/'])).stdout, context).toContain(
    `ccci-demo ${version}`,
  );
  expect(existsSync(warmRecordPath(world, domain)), context).toBe(false);
}

/**
 * A forge (file://, tracked temp dir) whose `owner/ccci-demo` has the branch `branch`: the
 * world's demo recipe at its main with `sed` applied to compose.yml. Returns the environment that
 * hands that branch to a run as its PR head.
 */
export function forgeHead(world: World, branch: string, sed: string, message: string): NodeJS.ProcessEnv {
  const forge = tempDir('ccci-forge-');
  const work = join(forge, 'work');
  const git = (...args: string[]) => execFileSync('git', args, { cwd: work, stdio: 'ignore' });
  execFileSync('git', ['clone', '-q', join(world.env.CCCI_TEST_RECIPE_REMOTE_BASE!, 'ccci-demo'), work], { stdio: 'ignore' });
  git('checkout', '-q', '-b', branch);
  execFileSync('sed', ['-i', sed, join(work, 'compose.yml')]);
  git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qam', message);
  execFileSync('git', ['clone', '-q', '--bare', work, join(forge, 'owner', 'ccci-demo.git')], { stdio: 'ignore' });
  execFileSync('git', ['-C', join(forge, 'owner', 'ccci-demo.git'), 'fetch', '-q', work, `${branch}:${branch}`], { stdio: 'ignore' });
  return { CCCI_GIT_BASE: `file://${forge}`, SRC: 'owner/ccci-demo', REF: branch };
}
