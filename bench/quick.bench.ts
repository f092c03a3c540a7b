// The quick lane against the cold lane: the wall time of `cc-ci run --quick` (the demo recipe's warm
// app upgraded in place, tested, rolled back) against a cold five-stage `cc-ci run` of the same
// recipe, on the real swarm and ingress (.ci/setup-swarm.sh, .ci/setup-ingress.sh), with the
// test-only abra. Rounds interleave cold and quick so the machine's noise hits both; the figures
// are medians. Everything lives under one scratch dir and a base domain of its own, removed at the end.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { median, printTable, scratchDir, scrubSwarm } from './support.js';

const ROUNDS = Number(process.env.BENCH_QUICK_ROUNDS ?? 3);

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = fileURLToPath(new URL('../dist/runner/cli.js', import.meta.url));
const fixtures = join(root, 'tests', 'fixtures');

/** One `cc-ci run`: its wall time in ms; throws unless it exits 0. */
function runMs(env: NodeJS.ProcessEnv, args: string[]): number {
  const t0 = process.hrtime.bigint();
  const result = spawnSync(process.execPath, [cli, 'run', ...args], { env, cwd: root, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (result.status !== 0)
    throw new Error(`cc-ci run ${args.join(' ')} exited ${result.status ?? result.signal}:\n${result.stderr.slice(-3000)}`);
  return ms;
}

export default async function quickBench(): Promise<boolean> {
  const dir = scratchDir('quick');
  const base = `bench${process.pid}.test`;
  const home = join(dir, 'home');
  const remote = join(dir, 'remote');
  for (const path of [home, remote, join(dir, 'runs'), join(dir, 'locks')]) mkdirSync(path, { recursive: true });
  execFileSync('bash', [join(fixtures, 'make-recipe-repo.sh'), join(remote, 'ccci-demo')], { stdio: 'ignore' });
  const warm = `warm-demo.${base}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    PATH: `${join(fixtures, 'abra')}:${process.env.PATH}`,
    CCCI_TEST_RECIPE_REMOTE_BASE: remote,
    CCCI_RUNS_DIR: join(dir, 'runs'),
    CCCI_APP_LOCK_DIR: join(dir, 'locks'),
    CCCI_BASE_DOMAIN: base,
    CCCI_INGRESS_CA: '/var/lib/cc-ci-test/ingress-root.pem',
    CCCI_TESTS_DIR: join(dir, 'operator-tests'),
    CCCI_WARM_APPS: warm,
    RECIPE: 'ccci-demo',
  };
  delete env.NODE_OPTIONS;
  try {
    // The warm app, at the published version before the latest, as an operator keeps one.
    for (const args of [
      ['server', 'add', '--local'],
      ['recipe', 'fetch', 'ccci-demo', '--no-input'],
      ['app', 'new', 'ccci-demo', '0.1.0+1.0', '--server', 'default', '--domain', warm, '--secrets', '--no-input'],
      ['app', 'deploy', warm, '--no-input'],
    ])
      execFileSync('abra', args, { env, stdio: 'ignore' });
    const cold: number[] = [];
    const quick: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // A run id and PR of its own per run: every cold run is a cold deploy of a fresh app.
      cold.push(runMs({ ...env, CCCI_RUN_ID: `cold-${round}`, PR: String(100 + round) }, []));
      quick.push(runMs({ ...env, CCCI_RUN_ID: `quick-${round}`, PR: String(200 + round) }, ['--quick']));
      console.log(
        `  round ${round + 1}/${ROUNDS}: cold ${(cold.at(-1)! / 1000).toFixed(1)} s, quick ${(quick.at(-1)! / 1000).toFixed(1)} s`,
      );
    }
    return printTable(`quick lane against a cold run (demo recipe, ${ROUNDS} rounds, medians)`, [
      {
        case: '`cc-ci run --quick` (upgrade, custom, rollback)',
        ours: median(quick) / 1000,
        baseline: median(cold) / 1000,
        unit: 's',
        baselineName: 'cold five-stage `cc-ci run`',
        target: 0.5,
      },
    ]);
  } finally {
    scrubSwarm(base.replaceAll('.', '_'));
  }
}
