// What a run reports: results.json (written atomically at the very end, whichever way the run
// ends) and the one-screen summary. Its fields are listed in docs/operations.md.
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { type RunAbortedError, RunFailedError } from '../../lib/errors.js';
import { writeFileAtomically } from '../../lib/run-state.js';
import type { Log } from '../host/log.js';
import { type Timings, timings } from '../host/timings.js';
import type { RunConfig } from './config.js';
import { junitXml } from './junit.js';
import type { DepResult } from './deps.js';
import type { WarmResult } from './quick.js';
import type { StageName } from './stages.js';

export type Verdict = 'pass' | 'fail' | 'skip';

/** One health check, hook or test, as results.json and junit.xml record it. */
export interface Check {
  name: string;
  verdict: Verdict;
  reason?: string;
  durationMs: number;
}

/** What a stage checked besides its own steps: docs/recipes.md#results. */
export interface StageChecks {
  /** HTTP health through the ingress, after each deploy of the stage converged. */
  health: Check[];
  /** install_steps.sh (install), setup_custom_tests.sh (custom). */
  hooks: Check[];
  /** The custom stage's tests, in the order they ran. */
  tests: Check[];
}

export interface StageResult extends StageChecks {
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
  /** The app lock's backend and, on etcd, each held domain's generation (its fencing token, docs/scale-out.md). */
  lock?: { backend: 'flock' | 'etcd'; generations: Record<string, string> };
  /** `clean` (nothing left), `residual` (something left: see the log), `skipped` (never deployed). */
  teardown: 'clean' | 'residual' | 'skipped';
  /** ccci.yml's dependencies, as far as the custom stage deployed them (docs/recipes.md#dependencies). */
  deps: DepResult[];
  /** `quick` (the warm app upgraded in place and rolled back) or `cold` (an app of the run's own). */
  lane: 'cold' | 'quick';
  /** Why a run that asked for the quick lane took the cold one. */
  laneReason?: string;
  /** The quick lane's warm app: versions, snapshot, rollback (docs/recipes.md#the-quick-lane). */
  warm?: WarmResult;
  exitCode: number;
  /** Why the run ended the way it did, when not simply green. */
  exitReason?: string;
  logPath: string;
  /** Where the wall time went: spans, cc-ci's own overhead, reaction to docker's events (docs/operations.md#timings). */
  timings?: Timings;
}

/** The results of a run that is starting: nothing done yet, exit code 1 until it ends otherwise. */
export function startResults(config: RunConfig, domain: string, runId: string, logPath: string): RunResults {
  return {
    recipe: config.recipe,
    domain,
    runId,
    ref: config.ref,
    pr: config.pr,
    startedAt: new Date().toISOString(),
    finishedAt: '',
    durationMs: 0,
    stages: [],
    deploys: 0,
    teardown: 'skipped',
    deps: [],
    lane: 'cold',
    exitCode: 1,
    logPath,
  };
}

/** Why a run that got to its end is red (a stage failed, something was left), or null when green. */
export function runFailure(results: RunResults): RunFailedError | null {
  if (results.warm?.rollback.verdict === 'fail') return new RunFailedError(`the rollback of the warm app ${results.warm.domain} failed`);
  const failed = results.stages.filter((stage) => stage.verdict === 'fail').map((stage) => stage.name);
  if (failed.length > 0) return new RunFailedError(`stage${failed.length > 1 ? 's' : ''} failed: ${failed.join(', ')}`);
  if (results.teardown === 'residual') return new RunFailedError('teardown left something behind');
  const residual = results.deps.filter((dep) => dep.teardown === 'residual').map((dep) => dep.domain);
  if (residual.length > 0) return new RunFailedError(`teardown left something of the dependencies ${residual.join(', ')} behind`);
  return null;
}

/** Stamps how the run ended (the lifetime's abort reason), writes results.json and junit.xml into `dir` and logs the summary. */
export function finishResults(results: RunResults, ending: RunAbortedError, dir: string, log: Log): void {
  results.exitCode = ending.exitCode;
  if (ending.end !== 'returned') results.exitReason = ending.message.replace(/^cc-ci: /, '');
  results.finishedAt = new Date().toISOString();
  results.durationMs = Date.now() - Date.parse(results.startedAt);
  const started = performance.now();
  writeFileAtomically(join(dir, 'junit.xml'), junitXml(results));
  timings.spanSince('results', started);
  results.timings = timings.report();
  writeResults(join(dir, 'results.json'), results);
  summary(results).forEach(log);
}

/** results.json, written whole or not at all. */
export function writeResults(path: string, results: RunResults): void {
  writeFileAtomically(path, `${JSON.stringify(results, null, 2)}\n`);
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
    // Every check that did not pass, with why: what a recipe maintainer reads first.
    for (const check of [...stage.health, ...stage.hooks, ...stage.tests]) {
      if (check.verdict !== 'pass') lines.push(`          ${mark[check.verdict]}  ${check.name}${check.reason ? `: ${check.reason}` : ''}`);
    }
  }
  if (results.warm) {
    const { domain, versionBefore, versionAfter, rollback } = results.warm;
    const took = rollback.verdict === 'pending' ? '' : ` ${(rollback.durationMs / 1000).toFixed(1)} s`;
    lines.push(
      `  lane: quick on ${domain}: ${versionBefore} -> the code under test -> ${versionAfter ?? '?'}; rollback ${rollback.verdict}${took}`,
    );
  } else if (results.laneReason) lines.push(`  lane: cold (${results.laneReason})`);
  for (const dep of results.deps) {
    const seconds = (dep.deployMs / 1000).toFixed(1).padStart(6);
    const state = dep.ready ? 'ready' : `NOT READY: ${dep.error ?? 'not deployed'}`;
    lines.push(
      `  dep   ${dep.recipe} ${dep.version ?? '(unversioned)'} at ${dep.domain} ${seconds} s  ${state}; teardown: ${dep.teardown}`,
    );
  }
  lines.push(`  teardown: ${results.teardown}; deploys: ${results.deploys}; ${(results.durationMs / 1000).toFixed(1)} s in all`);
  if (results.timings) lines.push(`  time: ${timeLine(results.timings)}`);
  lines.push(`  log: ${results.logPath}`);
  return lines;
}

/** The phases outside the stages, as the summary sums their spans (`teardown <domain>` into `teardown`). */
const PHASES = ['start', 'fetch', 'janitor', 'deploy', 'dep', 'rollback', 'teardown', 'results'];

/** The phases outside the stages, cc-ci's own share and its reaction to docker's events: one line. */
function timeLine(t: Timings): string {
  const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
  const phases = PHASES.flatMap((phase) => {
    const spans = t.spans.filter((span) => span.name === phase || span.name.startsWith(`${phase} `));
    return spans.length === 0 ? [] : [`${phase} ${seconds(spans.reduce((sum, span) => sum + span.durationMs, 0))}`];
  });
  const own = `cc-ci's own ${seconds(t.overheadMs)} (${(t.overheadShare * 100).toFixed(1)}% of ${seconds(t.wallMs)})`;
  const reaction =
    t.reaction.medianMs !== null ? `reaction to docker median ${Math.round(t.reaction.medianMs)} ms (${t.reaction.events} waits)` : '';
  return [...phases, own, reaction].filter(Boolean).join(', ');
}
