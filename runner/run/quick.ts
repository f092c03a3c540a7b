// The quick lane: instead of a cold deploy, the recipe's warm app is upgraded in place to the code
// under test, tested, and always rolled back. Under the warm app's lock; a recovery record first,
// so that whoever takes the lock next completes a rollback a dead run left. docs/recipes.md#the-quick-lane
import { existsSync, mkdirSync, readFileSync } from 'node:fs';

import { CcciError } from '../../lib/errors.js';
import { stackName } from '../../lib/naming.js';
import { deployCount, recordDeploy, writeFileAtomically } from '../../lib/run-state.js';
import { locking } from '../host/locking.js';
import { timings } from '../host/timings.js';
import type { HostTools } from '../host/tools.js';
import { setEnvKeys } from './contract.js';
import { checkHealth, type IngressConfig } from './health.js';
import { backupCapable, checkout, cleanTree, publishedVersions } from './recipe.js';
import { parseAppType } from './recipe-files.js';
import type { RunResults } from './results.js';
import { hook, runStages, settle, type StageContext, type StageOutcome } from './stages.js';
import { readRecord, recordPath, removeRecord, snapshotDir, type WarmRecord, type WarmSnapshot, writeRecord } from './warm-record.js';

/** The recipe's warm app; the version it is at is read under its lock (takeWarmApp). */
export interface WarmApp {
  domain: string;
}

/** The recipe's deployed warm app among `warmApps` (the first whose .env says TYPE=<recipe>), or why there is none. */
export async function findWarmApp(recipe: string, warmApps: readonly string[], tools: HostTools): Promise<WarmApp | { reason: string }> {
  if (warmApps.length === 0) return { reason: 'CCCI_WARM_APPS names no warm app' };
  for (const domain of warmApps) {
    const envPath = tools.abra.envPath(domain);
    const type = existsSync(envPath) ? parseAppType(readFileSync(envPath, 'utf8')) : null;
    if (type?.recipe !== recipe) continue;
    if ((await tools.docker.names('service', stackName(domain))).length === 0) return { reason: `the warm app ${domain} is not deployed` };
    if (type.version === null) return { reason: `the warm app ${domain} has no version in its .env (TYPE=${recipe})` };
    return { domain };
  }
  return { reason: `no app among CCCI_WARM_APPS (${warmApps.join(', ')}) is of ${recipe}` };
}

export interface RollbackContext extends HostTools {
  /** A checkout of the recipe with its published versions (the run's tree, or the canonical clone). */
  tree: string;
  ingress: IngressConfig;
  convergeTimeoutMs: number;
  signal?: AbortSignal;
}

/** The line every later holder of the app's lock gives while its rollback is not complete. */
export function refusal(domain: string, why: string): string {
  return (
    `the rollback of the warm app ${domain} failed (${why}); its recovery record ${recordPath(domain)} stays, and no quick run ` +
    `uses the app until a rollback succeeds (retry: cc-ci warm-reconcile --apps ${domain})`
  );
}

/**
 * Puts the warm app back as `record` describes it: its .env, the recorded version redeployed from
 * a clean checkout, its data restored, converged, healthy, answering, and labelled with the version.
 * Then the record goes. Throws (the record stays) when any step fails.
 */
export function rollbackWarm(record: WarmRecord, ctx: RollbackContext): Promise<void> {
  return timings.span(`rollback ${record.domain}`, () => rollBack(record, ctx));
}

async function rollBack(record: WarmRecord, ctx: RollbackContext): Promise<void> {
  const { abra, docker, log, signal } = ctx;
  const { domain, version } = record;
  const stack = stackName(domain);
  log(`== rollback: ${domain} back to ${version} ==`);
  writeFileAtomically(abra.envPath(domain), record.env);
  // abra deploys a version only from a clean tree: the code under test and a hook's overlays go.
  await checkout(ctx.tree, version);
  await cleanTree(ctx.tree);
  await abra.appDeploy(domain, { version, force: true });
  const snapshot = record.snapshot;
  if (snapshot?.kind === 'backup') await abra.restore(domain, snapshot.id ?? undefined);
  if (snapshot?.kind === 'volumes') {
    for (const { volume, file } of snapshot.volumes) await docker.loadVolume(volume, snapshot.image, snapshot.dir, file);
  }
  await docker.waitConverged(stack, ctx.convergeTimeoutMs);
  await docker.waitHealthy(stack, ctx.convergeTimeoutMs);
  const check = await checkHealth({
    ingress: ctx.ingress,
    domain,
    spec: record.health,
    signal: signal ?? new AbortController().signal,
    log,
  });
  if (check.verdict === 'fail') throw new CcciError('ERR_CCCI_ROLLBACK', check.reason!);
  const deployed = await docker.deployedVersion(stack);
  if (deployed !== version)
    throw new CcciError('ERR_CCCI_ROLLBACK', `${stack} is labelled ${deployed ?? 'with no version'}, not ${version}`);
  removeRecord(domain);
  log(`== rollback: ${domain} is at ${version}, healthy, its data restored; record removed ==`);
}

/**
 * For the holder of a warm app's lock, before anything else: completes the rollback a dead quick
 * run left, if its record is there. A rollback that fails throws the refusal (exit 1).
 */
export async function recoverWarm(domain: string, ctx: RollbackContext): Promise<void> {
  const record = readRecord(domain);
  if (record === null) return;
  ctx.log(`== warm app ${domain}: run ${record.runId} (pid ${record.pid}) left it mid-quick-lane — completing its rollback first ==`);
  try {
    await rollbackWarm(record, ctx);
  } catch (error) {
    if (ctx.signal?.aborted) throw error;
    throw new CcciError('ERR_CCCI_ROLLBACK', refusal(domain, (error as Error).message.split('\n')[0]!));
  }
}

/**
 * Takes the warm app's lock (waiting behind another quick run), completes any rollback left
 * pending, and resolves with the published version the app is at, read under the lock (before it,
 * another quick run may have had the app at its code under test). The run's tree goes back to `head`.
 */
export async function takeWarmApp(warm: WarmApp, ctx: RollbackContext & { recipe: string; head: string }): Promise<string> {
  await timings.span(`lock ${warm.domain}`, () =>
    timings.outsideOf(async () => (await locking()).acquire(warm.domain, { signal: ctx.signal, log: ctx.log })),
  );
  ctx.log(`== warm app lock held: ${warm.domain} ==`);
  await recoverWarm(warm.domain, ctx);
  await checkout(ctx.tree, ctx.head);
  const version = parseAppType(readFileSync(ctx.abra.envPath(warm.domain), 'utf8'))?.version ?? null;
  if (version === null || !(await publishedVersions(ctx.tree)).includes(version)) {
    throw new CcciError(
      'ERR_CCCI_WARM',
      `the warm app ${warm.domain} is at ${version ?? 'no version'}, not a published version of ${ctx.recipe}: the quick lane rolls back only to one`,
    );
  }
  return version;
}

/** The warm app's data, copied before the upgrade: abra's backup when the recipe opts in, else each volume. */
export async function snapshotWarm(domain: string, ctx: RollbackContext): Promise<WarmSnapshot> {
  const { abra, docker, log } = ctx;
  const stack = stackName(domain);
  if (backupCapable(ctx.tree, abra.envPath(domain))) return { kind: 'backup', id: await abra.backupCreate(domain) };
  const dir = snapshotDir(domain);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const image = await docker.serviceImage(stack);
  const volumes = (await docker.names('volume', stack)).map((volume) => ({ volume, file: `${volume}.tar` }));
  if (volumes.length > 0 && image === null)
    throw new CcciError('ERR_CCCI_SNAPSHOT', `${stack} has volumes but no service image to copy them with`);
  for (const { volume, file } of volumes) await docker.saveVolume(volume, image!, dir, file);
  log(`== quick lane: copied ${volumes.length} volumes of ${domain} into ${dir} ==`);
  return { kind: 'volumes', dir, image: image ?? '', volumes };
}

/** What results.json says of the quick lane. */
export interface WarmResult {
  domain: string;
  versionBefore: string;
  /** The version deployed after the rollback (equal to versionBefore when it succeeded). */
  versionAfter: string | null;
  snapshot: WarmSnapshot | null;
  rollback: { verdict: 'pass' | 'fail' | 'pending'; reason?: string; durationMs: number };
}

/**
 * Which lane a run that asked for the quick one takes: the warm app, or null (cold) with the
 * reason logged and recorded in `results`.
 */
export async function chooseLane(
  recipe: string,
  warmApps: readonly string[],
  tools: HostTools,
  results: RunResults,
): Promise<WarmApp | null> {
  const found = await findWarmApp(recipe, warmApps, tools);
  if ('reason' in found) {
    tools.log(`== quick lane: ${found.reason} — this run takes the cold lane ==`);
    results.lane = 'cold';
    results.laneReason = found.reason;
    return null;
  }
  tools.log(`== quick lane: the warm app ${found.domain} is upgraded in place; STAGES is ignored (upgrade, custom) ==`);
  results.lane = 'quick';
  return found;
}

export interface QuickLane {
  warm: WarmApp;
  /** The stages' context, its domain the warm app's. */
  ctx: StageContext;
  results: RunResults;
  /** What a rollback works with, on the given signal (the run's, or the teardown's). */
  rollbackContext: (signal?: AbortSignal) => RollbackContext;
}

/**
 * The quick lane under the warm app's lock: a rollback pending from a dead run completed first,
 * the recovery record written before the app is touched, then the upgrade and custom stages. The
 * rollback is handed to `onRollback` before anything changes, for the teardown to run whatever
 * happens (once: a second call waits for the first).
 */
export async function runQuickLane(
  lane: QuickLane,
  onRollback: (rollback: (signal?: AbortSignal) => Promise<boolean>) => void,
): Promise<void> {
  const { ctx, results } = lane;
  const warm = {
    domain: lane.warm.domain,
    version: await takeWarmApp(lane.warm, { ...lane.rollbackContext(ctx.signal), recipe: ctx.recipe, head: ctx.head }),
  };
  const record: WarmRecord = {
    ...{ domain: warm.domain, recipe: ctx.recipe, version: warm.version, env: readFileSync(ctx.abra.envPath(warm.domain), 'utf8') },
    ...{ snapshot: null, health: ctx.health, runId: ctx.runId, pid: process.pid, startedAt: new Date().toISOString() },
  };
  writeRecord(record);
  const outcome: WarmResult = {
    ...{ domain: warm.domain, versionBefore: warm.version, versionAfter: null, snapshot: null },
    rollback: { verdict: 'pending', durationMs: 0 },
  };
  results.warm = outcome;
  let rolling: Promise<boolean> | undefined;
  onRollback((signal) => {
    rolling ??= (async () => {
      const began = Date.now();
      const rollbackCtx = lane.rollbackContext(signal);
      try {
        await rollbackWarm(record, rollbackCtx);
        outcome.rollback = { verdict: 'pass', durationMs: Date.now() - began };
        outcome.versionAfter = warm.version;
        return true;
      } catch (error) {
        const reason = refusal(warm.domain, (error as Error).message.split('\n')[0]!);
        outcome.rollback = { verdict: 'fail', reason, durationMs: Date.now() - began };
        outcome.versionAfter = await rollbackCtx.docker.deployedVersion(stackName(warm.domain)).catch(() => null);
        rollbackCtx.log(`!! ${reason}`);
        return false;
      }
    })();
    return rolling;
  });
  const upgrade = async (stage: StageContext): Promise<StageOutcome> => {
    record.snapshot = await snapshotWarm(warm.domain, lane.rollbackContext(stage.signal));
    writeRecord(record);
    outcome.snapshot = record.snapshot;
    setEnvKeys(stage.abra.envPath(warm.domain), stage.envKeys);
    await hook(stage, 'installSteps');
    stage.log(`== quick lane: ${warm.domain} ${warm.version} -> the code under test, in place ==`);
    recordDeploy(stage.state);
    results.deploys = deployCount(stage.state);
    await stage.abra.appDeploy(warm.domain, { chaos: true, force: true });
    await settle(stage);
    return { verdict: 'pass' };
  };
  await runStages(ctx, results, { names: ['upgrade', 'custom'], gate: 'upgrade', runners: { upgrade } });
}
