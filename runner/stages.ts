// The five stages, run against the live app. A stage resolves with pass or skip (and why), or
// throws: the run records it as failed and goes on to teardown.
import { join } from 'node:path';
import { readdirSync, statSync } from 'node:fs';

import { readOpState, writeOpState } from '../lib/run-state.js';
import type { Abra } from './abra.js';
import type { Docker } from './docker.js';
import { exec } from './exec.js';
import type { Log } from './log.js';
import { backupCapable, checkout, previousVersion } from './recipe.js';

export const STAGES = ['install', 'upgrade', 'backup', 'restore', 'custom'] as const;
export type StageName = (typeof STAGES)[number];

export interface StageContext {
  recipe: string;
  domain: string;
  stack: string;
  runId: string;
  /** The run's recipe tree and the code under test's commit in it. */
  tree: string;
  head: string;
  /** The recipe's tests/, snapshotted at fetch time (null: none). */
  tests: string | null;
  abra: Abra;
  docker: Docker;
  log: Log;
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
  if (!container || !mount) throw new Error(`no running container with a volume in ${ctx.stack}`);
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
  if (after !== marker) throw new Error(`data written before the upgrade did not survive it (found ${JSON.stringify(after)})`);
  return { verdict: 'pass' };
}

const NOT_BACKUP_CAPABLE = 'the recipe declares no backupbot.backup label';

async function backup(ctx: StageContext): Promise<StageOutcome> {
  if (!backupCapable(ctx.tree)) return { verdict: 'skip', reason: NOT_BACKUP_CAPABLE };
  const marker = `backup-${ctx.runId}-${Date.now()}`;
  if (!(await writeMarker(ctx, marker))) return { verdict: 'skip', reason: 'the app has no volume to back up' };
  await ctx.abra.backupCreate(ctx.domain);
  writeOpState({ backupMarker: marker });
  return { verdict: 'pass' };
}

async function restore(ctx: StageContext): Promise<StageOutcome> {
  if (!backupCapable(ctx.tree)) return { verdict: 'skip', reason: NOT_BACKUP_CAPABLE };
  if (typeof readOpState().backupMarker !== 'string') {
    const made = await backup(ctx);
    if (made.verdict === 'skip') return made;
  }
  const marker = readOpState().backupMarker as string;
  await writeMarker(ctx, 'overwritten-after-backup');
  await ctx.abra.restore(ctx.domain);
  await settle(ctx);
  const after = await readMarker(ctx);
  if (after !== marker) throw new Error(`restore did not bring back the backed-up data (found ${JSON.stringify(after)})`);
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
      env: { DOMAIN: ctx.domain, STACK_NAME: ctx.stack, RECIPE: ctx.recipe, CCCI_RECIPE_DIR: ctx.tree },
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
