// Shared bench plumbing: compile a C comparison program, time things, print a ratio table.
// Every figure is a ratio against a comparison measured in the same run on the same machine.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const workDir = mkdtempSync(join(tmpdir(), 'ccci-bench-'));
process.on('exit', () => rmSync(workDir, { recursive: true, force: true }));

/** A scratch dir under the bench's temp dir, removed when the bench process exits. */
export function scratchDir(name: string): string {
  const dir = join(workDir, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Compiles a C source with -O2 and returns the binary's path. */
export function compileC(name: string, source: string): string {
  const src = join(workDir, `${name}.c`);
  const bin = join(workDir, name);
  writeFileSync(src, source);
  execFileSync('cc', ['-O2', '-o', bin, src], { stdio: 'inherit' });
  return bin;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Nanoseconds per iteration of `fn`, best of `rounds` runs of `iterations` calls. */
export function nsPerOp(fn: () => void, iterations: number, rounds = 5): number {
  for (let i = 0; i < Math.min(iterations, 10_000); i++) fn(); // warm up the JIT
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / iterations);
  }
  return best;
}

export interface Row {
  case: string;
  ours: number;
  baseline: number;
  unit: string;
  baselineName: string;
  /** The target ratio, when the issue names one. */
  target?: number;
}

/** Prints a Markdown table of `ours / baseline` ratios; returns false if any row misses its target. */
export function printTable(title: string, rows: Row[]): boolean {
  console.log(`\n### ${title}\n`);
  console.log('| case | cc-ci | comparison | ratio | target |');
  console.log('|---|---|---|---|---|');
  let ok = true;
  for (const row of rows) {
    const ratio = row.ours / row.baseline;
    const met = row.target === undefined || ratio <= row.target;
    ok &&= met;
    const fmt = (v: number): string => `${v < 10 ? v.toFixed(2) : v.toFixed(1)} ${row.unit}`;
    console.log(
      `| ${row.case} | ${fmt(row.ours)} | ${fmt(row.baseline)} (${row.baselineName}) | ${ratio.toFixed(2)}× | ${
        row.target === undefined ? '—' : `≤ ${row.target}× ${met ? 'met' : 'MISSED'}`
      } |`,
    );
  }
  return ok;
}

/** Removes every stack, volume, secret and network whose name holds `marker` (a swarm bench's base domain). */
export function scrubSwarm(marker: string): void {
  const list = (args: string[]): string[] =>
    execFileSync('docker', args, { encoding: 'utf8' })
      .split('\n')
      .filter((name) => name.includes(marker));
  for (const stack of list(['stack', 'ls', '--format', '{{.Name}}'])) spawnSync('docker', ['stack', 'rm', stack]);
  for (let i = 0; i < 120 && list(['ps', '-a', '--format', '{{.Names}}']).length > 0; i++) spawnSync('sleep', ['0.5']);
  for (const volume of list(['volume', 'ls', '--format', '{{.Name}}'])) spawnSync('docker', ['volume', 'rm', '-f', volume]);
  for (const secret of list(['secret', 'ls', '--format', '{{.Name}}'])) spawnSync('docker', ['secret', 'rm', secret]);
  for (const network of list(['network', 'ls', '--format', '{{.Name}}'])) spawnSync('docker', ['network', 'rm', network]);
}
