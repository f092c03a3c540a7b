// The five stages, run against the live app. A stage resolves with pass or skip (and why), or
// throws: the run records it as failed and goes on to teardown. Each stage's health checks, hooks
// and tests are recorded with it (docs/recipes.md).
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { CcciError, EXIT, exitCodeFor } from '../../lib/errors.js';
import { readDepsSkipReport, readOpState, writeOpState, type RunStateFiles } from '../../lib/run-state.js';
import { timings } from '../host/timings.js';
import type { HostTools } from '../host/tools.js';
import { checkHealth, type HealthSpec, type IngressConfig } from './health.js';
import { setEnvKeys } from './contract.js';
import { type DepResult, depsVerdict } from './deps.js';
import { backupCapable, checkout, previousVersion, treeChanges } from './recipe.js';
import { HOOKS, runScript, testFiles } from './recipe-tests.js';
import type { Check, RunResults, StageChecks } from './results.js';

export const STAGES = ['install', 'upgrade', 'backup', 'restore', 'custom'] as const;
export type StageName = (typeof STAGES)[number];

export interface StageContext extends HostTools {
  recipe: string;
  domain: string;
  stack: string;
  runId: string;
  /** The run's recipe tree and the code under test's commit in it. */
  tree: string;
  head: string;
  /** The run's tests dir: the recipe's tests/ with the operator's laid over it (null: none). */
  tests: string | null;
  /** The whole environment hooks and tests get (docs/recipes.md#environment). */
  scriptEnv: Record<string, string>;
  /** ccci.yml's `env`: keys set in the app's .env before every deploy. */
  envKeys: Record<string, string>;
  testTimeoutMs: number;
  ingress: IngressConfig;
  health: HealthSpec;
  /** The run's state files. */
  state: RunStateFiles;
  signal: AbortSignal;
  convergeTimeoutMs: number;
  /** Where the current stage's health checks, hooks and tests are recorded. */
  checks: StageChecks;
  /** Deploys ccci.yml's dependencies (once, as the custom stage begins), their health checks recorded in `health`. */
  dependencies: (health: Check[]) => Promise<readonly DepResult[]>;
}

export interface StageOutcome {
  verdict: 'pass' | 'skip';
  reason?: string;
}

const MARKER = '.ccci-marker';

/** Writes `value` into the app's first volume; false when the app has no volume to write to. */
async function writeMarker(ctx: StageContext, value: string): Promise<boolean> {
  const container = await ctx.docker.container(ctx.stack);
  const mount = container && (await ctx.docker.volumeMount(container));
  if (!container || !mount) return false;
  await ctx.docker.execIn(container, ['sh', '-c', `printf %s "$1" > "$2/${MARKER}"`, 'sh', value, mount]);
  return true;
}

async function readMarker(ctx: StageContext): Promise<string> {
  const container = await ctx.docker.container(ctx.stack);
  const mount = container && (await ctx.docker.volumeMount(container));
  if (!container || !mount) throw new CcciError('ERR_CCCI_STAGE_CHECK', `no running container with a volume in ${ctx.stack}`);
  return (await ctx.docker.execIn(container, ['sh', '-c', `cat "$1/${MARKER}" 2>/dev/null || true`, 'sh', mount])).trim();
}

/** Converged, healthy containers, and the app answering through the ingress. */
export async function settle(ctx: StageContext): Promise<void> {
  await ctx.docker.waitConverged(ctx.stack, ctx.convergeTimeoutMs);
  await ctx.docker.waitHealthy(ctx.stack, ctx.convergeTimeoutMs);
  await health(ctx);
}

/** The HTTP health check through the ingress, recorded in the stage; a failure throws. */
export async function health(ctx: Pick<StageContext, 'ingress' | 'domain' | 'health' | 'signal' | 'log' | 'checks'>): Promise<void> {
  const check = await checkHealth({ ingress: ctx.ingress, domain: ctx.domain, spec: ctx.health, signal: ctx.signal, log: ctx.log });
  ctx.checks.health.push(check);
  if (check.verdict === 'fail') throw new CcciError('ERR_CCCI_HEALTH', check.reason!);
}

/** One hook or test of the tests dir `dir`, with the contract's environment and timeout. */
function script(
  ctx: Pick<StageContext, 'scriptEnv' | 'testTimeoutMs' | 'signal' | 'log'>,
  dir: string,
  name: string,
  kind: 'hook' | 'test',
): Promise<Check> {
  return timings.span(`${kind} ${name}`, () =>
    runScript(name, { dir, env: ctx.scriptEnv, timeoutMs: ctx.testTimeoutMs, signal: ctx.signal, log: ctx.log }),
  );
}

/** Runs one hook of the tests dir, if present, recorded in the stage; a failing hook throws. */
export async function hook(
  ctx: Pick<StageContext, 'tests' | 'scriptEnv' | 'testTimeoutMs' | 'signal' | 'log' | 'checks'>,
  which: keyof typeof HOOKS,
): Promise<void> {
  const name = HOOKS[which];
  if (ctx.tests === null || !existsSync(join(ctx.tests, name))) return;
  ctx.log(`== hook: ${name} ==`);
  const check = await script(ctx, ctx.tests, name, 'hook');
  ctx.checks.hooks.push(check);
  if (check.verdict === 'fail') throw new CcciError('ERR_CCCI_HOOK', `${name} failed: ${check.reason}`);
}

async function install(ctx: StageContext): Promise<StageOutcome> {
  await settle(ctx);
  return { verdict: 'pass' };
}

async function upgrade(ctx: StageContext): Promise<StageOutcome> {
  const previous = await previousVersion(ctx.tree, ctx.head);
  if (!previous) return { verdict: 'skip', reason: 'the recipe has no earlier published version' };
  ctx.log(`== upgrade: ${previous} first, then the code under test in place ==`);
  await checkout(ctx.tree, previous);
  setEnvKeys(ctx.abra.envPath(ctx.domain), ctx.envKeys);
  const overlays = await treeChanges(ctx.tree);
  if (overlays.length === 0) await ctx.abra.appDeploy(ctx.domain, { version: previous, force: true });
  else {
    // abra deploys a tagged version only from a clean tree; the earlier version must carry the
    // hook's overlays too, so it goes out as its checkout (the Python runner's fallback as well).
    ctx.log(`== upgrade: ${previous} deployed from its checkout (--chaos): the tree also holds ${overlays.join(', ')} ==`);
    await ctx.abra.appDeploy(ctx.domain, { chaos: true, force: true });
  }
  await settle(ctx);
  const marker = `upgrade-${ctx.runId}-${Date.now()}`;
  const hasVolume = await writeMarker(ctx, marker);
  await checkout(ctx.tree, ctx.head);
  await ctx.abra.appDeploy(ctx.domain, { chaos: true, force: true });
  await settle(ctx);
  if (!hasVolume) return { verdict: 'pass', reason: 'upgraded; the app has no volume, so data survival was not checked' };
  const after = await readMarker(ctx);
  if (after !== marker)
    throw new CcciError('ERR_CCCI_STAGE_CHECK', `data written before the upgrade did not survive it (found ${JSON.stringify(after)})`);
  return { verdict: 'pass' };
}

const NOT_BACKUP_CAPABLE = 'the recipe declares no backupbot.backup label';

async function backup(ctx: StageContext): Promise<StageOutcome> {
  if (!backupCapable(ctx.tree, ctx.abra.envPath(ctx.domain))) return { verdict: 'skip', reason: NOT_BACKUP_CAPABLE };
  const marker = `backup-${ctx.runId}-${Date.now()}`;
  if (!(await writeMarker(ctx, marker))) return { verdict: 'skip', reason: 'the app has no volume to back up' };
  await ctx.abra.backupCreate(ctx.domain);
  writeOpState(ctx.state, { backupMarker: marker });
  return { verdict: 'pass' };
}

async function restore(ctx: StageContext): Promise<StageOutcome> {
  if (!backupCapable(ctx.tree, ctx.abra.envPath(ctx.domain))) return { verdict: 'skip', reason: NOT_BACKUP_CAPABLE };
  if (typeof readOpState(ctx.state).backupMarker !== 'string') {
    const made = await backup(ctx);
    if (made.verdict === 'skip') return made;
  }
  const marker = readOpState(ctx.state).backupMarker as string;
  await writeMarker(ctx, 'overwritten-after-backup');
  await ctx.abra.restore(ctx.domain);
  await settle(ctx);
  const after = await readMarker(ctx);
  if (after !== marker)
    throw new CcciError('ERR_CCCI_STAGE_CHECK', `restore did not bring back the backed-up data (found ${JSON.stringify(after)})`);
  return { verdict: 'pass' };
}

async function custom(ctx: StageContext): Promise<StageOutcome> {
  const tests = ctx.tests === null ? [] : testFiles(ctx.tests);
  if (ctx.tests === null || (tests.length === 0 && !existsSync(join(ctx.tests, HOOKS.setupCustomTests)))) {
    return { verdict: 'skip', reason: 'no tests: neither the recipe nor the operator dir has a test_* or *.sh test' };
  }
  const deps = await ctx.dependencies(ctx.checks.health);
  await hook(ctx, 'setupCustomTests');
  const results: Check[] = [];
  for (const name of tests) {
    ctx.log(`== custom: ${name} ==`);
    const check = await script(ctx, ctx.tests, name, 'test');
    ctx.log(`== custom: ${name} ${check.verdict.toUpperCase()}${check.reason ? ` — ${check.reason}` : ''} ==`);
    results.push(check);
    ctx.checks.tests.push(check);
  }
  // Read before the verdict: a test that skipped for a missing dependency makes the stage red.
  const depsFailure = depsVerdict(deps, readDepsSkipReport(ctx.state));
  const failed = results.filter((check) => check.verdict === 'fail');
  if (failed.length > 0) {
    throw new CcciError(
      'ERR_CCCI_TESTS',
      `${failed.length} of ${results.length} tests failed: ${failed.map((check) => `${check.name} (${check.reason})`).join('; ')}${
        depsFailure ? `; ${depsFailure}` : ''
      }`,
    );
  }
  if (depsFailure) throw new CcciError('ERR_CCCI_DEPS', depsFailure);
  if (results.length > 0 && results.every((check) => check.verdict === 'skip'))
    return { verdict: 'skip', reason: `all ${results.length} tests skipped` };
  return { verdict: 'pass' };
}

export const STAGE_RUNNERS: Record<StageName, (ctx: StageContext) => Promise<StageOutcome>> = {
  install,
  upgrade,
  backup,
  restore,
  custom,
};

const noChecks = (): StageChecks => ({ health: [], hooks: [], tests: [] });

/** What runStages runs: the stages, the cold lane's first deploy, and the stage whose failure skips the rest. */
export interface StagePlan {
  names: readonly StageName[];
  /** The cold lane's one deploy, which opens install; the quick lane has none. */
  deploy?: (checks: StageChecks) => Promise<void>;
  /** Stage runners in place of the cold lane's (the quick lane's upgrade). */
  runners?: Partial<Record<StageName, (ctx: StageContext) => Promise<StageOutcome>>>;
  /** A failure of this stage skips the rest: install (cold), upgrade (quick). */
  gate: StageName;
}

/**
 * The first deploy, then the stages in order, each recorded in `results` with its verdict, time,
 * health checks, hooks and tests. The deploy opens the install stage: its hook (install_steps.sh)
 * and its failure are install's, and a failed gate stage skips the rest. A stage that throws is
 * recorded as failed (its first line the reason) and the next one runs. An abort, or bad input,
 * ends it all at once.
 */
export async function runStages(ctx: StageContext, results: RunResults, plan: StagePlan): Promise<void> {
  const { names, gate } = plan;
  const deployed = Date.now();
  const installChecks = noChecks();
  let deployFailure: string | null = null;
  try {
    await plan.deploy?.(installChecks);
  } catch (error) {
    if (ctx.signal.aborted || exitCodeFor(error) === EXIT.badInput) throw error;
    deployFailure = `the first deploy failed: ${(error as Error).message.split('\n')[0]}`;
    ctx.log(`!! ${deployFailure}`);
  }
  const stages = deployFailure !== null && !names.includes('install') ? (['install', ...names] as StageName[]) : names;
  for (const name of stages) {
    const began = name === 'install' ? deployed : Date.now();
    ctx.checks = name === 'install' ? installChecks : noChecks();
    const record = (result: StageOutcome | { verdict: 'fail'; reason: string }): void => {
      results.stages.push({ name, ...result, ...ctx.checks, durationMs: Date.now() - began });
    };
    if (deployFailure !== null) {
      record(name === 'install' ? { verdict: 'fail', reason: deployFailure } : { verdict: 'skip', reason: 'the first deploy failed' });
      continue;
    }
    if (results.stages.some((s) => s.name === gate && s.verdict === 'fail')) {
      record({ verdict: 'skip', reason: `${gate} failed` });
      continue;
    }
    ctx.log(`== stage ${name} ==`);
    try {
      record(await timings.span(`stage ${name}`, () => (plan.runners?.[name] ?? STAGE_RUNNERS[name])(ctx)));
    } catch (error) {
      // Bad input (a planted lockfile, unparseable docker output) is not the app's failure: it ends the run.
      if (ctx.signal.aborted || exitCodeFor(error) === EXIT.badInput) throw error;
      ctx.log(`!! stage ${name} failed: ${(error as Error).message}`);
      record({ verdict: 'fail', reason: (error as Error).message.split('\n')[0]! });
    }
  }
}
