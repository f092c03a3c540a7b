// The five stages, run against the live app. A stage resolves with pass or skip (and why), or
// throws: the run records it as failed and goes on to teardown.
import { join } from 'node:path';
import { readdirSync, statSync } from 'node:fs';

import { CcciError } from '../../lib/errors.js';
import { readOpState, runStateEnv, writeOpState, type RunStateFiles } from '../../lib/run-state.js';
import { exec } from '../host/exec.js';
import type { HostTools } from '../host/tools.js';
import { backupCapable, checkout, previousVersion } from './recipe.js';
import type { RunResults, StageResult } from './results.js';

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
  /** The recipe's tests/, snapshotted at fetch time (null: none). */
  tests: string | null;
  /** The run's state files (docs/recipes.md lists what hooks and tests get of them). */
  state: RunStateFiles;
  signal: AbortSignal;
  convergeTimeoutMs: number;
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

async function settle(ctx: StageContext): Promise<void> {
  await ctx.docker.waitConverged(ctx.stack, ctx.convergeTimeoutMs);
  await ctx.docker.waitHealthy(ctx.stack, ctx.convergeTimeoutMs);
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
  await ctx.abra.appDeploy(ctx.domain, { version: previous, force: true });
  await settle(ctx);
  const marker = `upgrade-${ctx.runId}-${Date.now()}`;
  const hasVolume = await writeMarker(ctx, marker);
  await checkout(ctx.tree, ctx.head);
  await ctx.abra.appDeploy(ctx.domain, { chaos: true, force: true });
  await settle(ctx);
  if (!hasVolume) return { verdict: 'pass', reason: 'upgraded; the app has no volume, so data survival was not checked' };
  const after = await readMarker(ctx);
  if (after !== marker) throw new CcciError('ERR_CCCI_STAGE_CHECK', `data written before the upgrade did not survive it (found ${JSON.stringify(after)})`);
  return { verdict: 'pass' };
}

const NOT_BACKUP_CAPABLE = 'the recipe declares no backupbot.backup label';

async function backup(ctx: StageContext): Promise<StageOutcome> {
  if (!backupCapable(ctx.tree)) return { verdict: 'skip', reason: NOT_BACKUP_CAPABLE };
  const marker = `backup-${ctx.runId}-${Date.now()}`;
  if (!(await writeMarker(ctx, marker))) return { verdict: 'skip', reason: 'the app has no volume to back up' };
  await ctx.abra.backupCreate(ctx.domain);
  writeOpState(ctx.state, { backupMarker: marker });
  return { verdict: 'pass' };
}

async function restore(ctx: StageContext): Promise<StageOutcome> {
  if (!backupCapable(ctx.tree)) return { verdict: 'skip', reason: NOT_BACKUP_CAPABLE };
  if (typeof readOpState(ctx.state).backupMarker !== 'string') {
    const made = await backup(ctx);
    if (made.verdict === 'skip') return made;
  }
  const marker = readOpState(ctx.state).backupMarker as string;
  await writeMarker(ctx, 'overwritten-after-backup');
  await ctx.abra.restore(ctx.domain);
  await settle(ctx);
  const after = await readMarker(ctx);
  if (after !== marker) throw new CcciError('ERR_CCCI_STAGE_CHECK', `restore did not bring back the backed-up data (found ${JSON.stringify(after)})`);
  return { verdict: 'pass' };
}

async function custom(ctx: StageContext): Promise<StageOutcome> {
  if (!ctx.tests) return { verdict: 'skip', reason: 'the recipe ships no tests/' };
  const scripts = readdirSync(ctx.tests)
    .filter((name) => name.endsWith('.sh') && statSync(join(ctx.tests!, name)).isFile())
    .sort();
  if (scripts.length === 0) return { verdict: 'skip', reason: 'the recipe tests/ has no *.sh test' };
  for (const script of scripts) {
    ctx.log(`== custom: ${script} ==`);
    await exec('sh', [join(ctx.tests, script)], {
      cwd: ctx.tests,
      signal: ctx.signal,
      log: ctx.log,
      tag: `[${script}]`,
      timeoutMs: 15 * 60_000,
      env: { DOMAIN: ctx.domain, STACK_NAME: ctx.stack, RECIPE: ctx.recipe, CCCI_RECIPE_DIR: ctx.tree, ...runStateEnv(ctx.state) },
    });
  }
  return { verdict: 'pass' };
}

export const STAGE_RUNNERS: Record<StageName, (ctx: StageContext) => Promise<StageOutcome>> = {
  install,
  upgrade,
  backup,
  restore,
  custom,
};

/**
 * Runs the stages in order, recording each one's verdict and time in `results`. A stage that
 * throws is recorded as failed (its first line the reason) and the next one runs; after a failed
 * install the rest are skipped. An abort (signal, deadline) ends the loop at once.
 */
export async function runStages(ctx: StageContext, names: readonly StageName[], results: RunResults): Promise<void> {
  for (const name of names) {
    const began = Date.now();
    const record = (result: Omit<StageResult, 'name' | 'durationMs'>): void => {
      results.stages.push({ name, ...result, durationMs: Date.now() - began });
    };
    if (results.stages.some((s) => s.name === 'install' && s.verdict === 'fail')) {
      record({ verdict: 'skip', reason: 'install failed' });
      continue;
    }
    ctx.log(`== stage ${name} ==`);
    try {
      record(await STAGE_RUNNERS[name](ctx));
    } catch (error) {
      if (ctx.signal.aborted) throw error;
      ctx.log(`!! stage ${name} failed: ${(error as Error).message}`);
      record({ verdict: 'fail', reason: (error as Error).message.split('\n')[0] });
    }
  }
}
