// results.json and the one-screen summary at the end of a run.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

import type { StageName } from './stages.js';

export type Verdict = 'pass' | 'fail' | 'skip';

export interface StageResult {
  name: StageName;
  verdict: Verdict;
  reason?: string;
  durationMs: number;
}

export interface RunResults {
  recipe: string;
  domain: string;
  runId: string;
  ref: string | null;
  pr: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  stages: StageResult[];
  /** How many deploys the run made: exactly 1 for a run that got as far as deploying. */
  deploys: number;
  /** `clean` (nothing left), `residual` (something left: see the log), `skipped` (never deployed). */
  teardown: 'clean' | 'residual' | 'skipped';
  exitCode: number;
  /** Why the run ended the way it did, when not simply green. */
  exitReason?: string;
  logPath: string;
}

export function writeResults(path: string, results: RunResults): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(results, null, 2)}\n`);
}

export function summary(results: RunResults): string[] {
  const mark: Record<Verdict, string> = { pass: 'PASS', fail: 'FAIL', skip: 'skip' };
  const lines = [
    '',
    `== cc-ci ${results.recipe} (${results.domain}) run ${results.runId}: exit ${results.exitCode}${
      results.exitReason ? ` — ${results.exitReason}` : ''
    } ==`,
  ];
  for (const stage of results.stages) {
    const seconds = (stage.durationMs / 1000).toFixed(1).padStart(6);
    lines.push(`  ${mark[stage.verdict]}  ${stage.name.padEnd(8)} ${seconds} s${stage.reason ? `  ${stage.reason}` : ''}`);
  }
  lines.push(`  teardown: ${results.teardown}; deploys: ${results.deploys}; ${(results.durationMs / 1000).toFixed(1)} s in all`);
  lines.push(`  log: ${results.logPath}`);
  return lines;
}
