// CLI start-up: the wall time of `node dist/runner/cli.js --version`, `--help` and `locks` (an
// empty lock dir), each against `node -e 0`, the floor any Node CLI starts from. Each round runs
// every case once paired with a run of `node -e 0`, the pair's order flipped every round, so a
// noisy moment on the machine hits both sides alike. The figures are medians over the rounds; each
// ratio is against the medians of its own `node -e 0` runs.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { median, printTable, scratchDir, type Row } from './support.js';

const WARMUP = 3;
const ROUNDS = Number(process.env.BENCH_CLI_ROUNDS ?? 60);

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = fileURLToPath(new URL('../dist/runner/cli.js', import.meta.url));
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };

interface Case {
  name: string;
  args: string[];
  /** What its stdout must be, checked once before timing. */
  expect: RegExp;
}

/** One run of `node args`: its wall time in ms; throws unless it exits 0. */
function wallMs(args: string[], env: NodeJS.ProcessEnv): number {
  const t0 = process.hrtime.bigint();
  const result = spawnSync(process.execPath, args, { env, cwd: root, stdio: 'ignore' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (result.status !== 0) throw new Error(`node ${args.join(' ')} exited ${result.status ?? result.signal}`);
  return ms;
}

export default async function cliBench(): Promise<boolean> {
  const locks = scratchDir('cli-locks'); // empty: `cc-ci locks` lists nothing
  // The same environment for both sides, without NODE_OPTIONS (a loader there would slow both).
  const env: NodeJS.ProcessEnv = { ...process.env, CCCI_APP_LOCK_DIR: locks };
  delete env.NODE_OPTIONS;

  const cases: Case[] = [
    { name: 'cc-ci --version', args: [cli, '--version'], expect: new RegExp(`^cc-ci ${version.replace(/\./g, '\\.')}\n$`) },
    { name: 'cc-ci --help', args: [cli, '--help'], expect: /^Usage: cc-ci <command>/ },
    { name: 'cc-ci locks (empty lock dir)', args: [cli, 'locks'], expect: new RegExp(`^no app lockfiles in ${locks}\n$`) },
  ];
  for (const c of cases) {
    const out = spawnSync(process.execPath, c.args, { env, cwd: root, encoding: 'utf8' });
    if (out.status !== 0 || !c.expect.test(out.stdout))
      throw new Error(`${c.name}: exit ${out.status}, stdout ${JSON.stringify(out.stdout)} ${out.stderr}`);
  }

  const floor = ['-e', '0'];
  const ours = cases.map(() => [] as number[]);
  const theirs = cases.map(() => [] as number[]);
  const load = loadavg()[0]!;
  for (let round = 0; round < WARMUP + ROUNDS; round++) {
    cases.forEach((c, i) => {
      const floorFirst = round % 2 === 0;
      const before = floorFirst ? wallMs(floor, env) : 0;
      const mine = wallMs(c.args, env);
      const base = floorFirst ? before : wallMs(floor, env);
      if (round < WARMUP) return;
      ours[i]!.push(mine);
      theirs[i]!.push(base);
    });
  }

  const all = theirs.flat();
  console.log(
    `\ncc-ci start-up, ${ROUNDS} rounds (after ${WARMUP} warm-up), each case paired with a node -e 0 run; ` +
      `load average ${load.toFixed(2)} at the start, ${loadavg()[0]!.toFixed(2)} at the end; ` +
      `node -e 0 over all pairs: median ${median(all).toFixed(1)} ms`,
  );
  const rows: Row[] = cases.map((c, i) => ({
    case: c.name,
    ours: median(ours[i]!),
    baseline: median(theirs[i]!),
    unit: 'ms',
    baselineName: 'node -e 0',
    target: 1.2,
  }));
  return printTable(`cli: start-up wall time (median of ${ROUNDS} pairs)`, rows);
}
