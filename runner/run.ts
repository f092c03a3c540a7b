// `cc-ci run`, top to bottom: guards → per-run ABRA_DIR → fetch → janitor → deploy (under the app
// lock) → stages → teardown → results. Each step is one call into its own module.
import { join } from 'node:path';

import { runDir, runId, setupRunAbraDir } from '../lib/abra-dir.js';
import { janitor } from '../lib/janitor.js';
import { installLifetimeGuards, type RunAbortedError } from '../lib/lifetime.js';
import { heldAppLocks } from '../lib/lock.js';
import { InputError, appDomain, stackName } from '../lib/naming.js';
import { createRunState, removeRunState, removeStaleRunState } from '../lib/run-state.js';
import { abraClient } from './abra.js';
import type { RunConfig } from './config.js';
import { deployApp } from './deploy.js';
import { defaultJanitorHooks } from './discovery.js';
import { dockerClient } from './docker.js';
import { createLog, type Log } from './log.js';
import { fetchRecipe, headCommit, snapshotTests } from './recipe.js';
import { summary, writeResults, type RunResults, type StageResult } from './results.js';
import { STAGE_RUNNERS, type StageContext } from './stages.js';
import { TeardownError, teardownApp } from './teardown.js';

export async function runRecipeCi(config: RunConfig): Promise<never> {
  const id = runId();
  const dir = runDir();
  const logPath = join(dir, 'run.log');
  const log: Log = createLog(logPath);
  // Before any lock, abra call or subprocess: the run's lifetime is bounded from here on.
  const lifetime = installLifetimeGuards({ log });
  const domain = appDomain(config.recipe, config.pr, config.ref ?? '');
  const started = Date.now();
  const results: RunResults = {
    recipe: config.recipe,
    domain,
    runId: id,
    ref: config.ref,
    pr: config.pr,
    startedAt: new Date(started).toISOString(),
    finishedAt: '',
    durationMs: 0,
    stages: [],
    deploys: 0,
    teardown: 'skipped',
    exitCode: 1,
    logPath,
  };

  // Registered first, so it runs last: whatever way the run ends, results.json says how.
  lifetime.onTeardown(() => {
    const reason = lifetime.signal.reason as RunAbortedError;
    results.exitCode = reason.exitCode;
    if (reason.end !== 'returned') results.exitReason = reason.message.replace(/^cc-ci: /, '');
    results.finishedAt = new Date().toISOString();
    results.durationMs = Date.now() - started;
    writeResults(join(dir, 'results.json'), results);
    summary(results).forEach(log);
  });

  // Tears our app down, once, and only if we hold its lock: a run cancelled while it waited for the
  // lock must never touch the app of the run it was waiting for. A second call (the funnel's, when
  // a signal lands during the run's own teardown) waits for the one in flight: exiting under it
  // would leave the app half-removed and results.json saying "skipped".
  let tearingDown: Promise<boolean> | undefined;
  const teardownOurs = (signal?: AbortSignal): Promise<boolean> => {
    if (!heldAppLocks().some((lock) => lock.domain === domain)) return Promise.resolve(true);
    tearingDown ??= (async () => {
      const tools = { abra: abraClient({ server: config.server, log, signal }), docker: dockerClient({ log, signal }), log };
      try {
        await teardownApp(domain, tools, true);
        results.teardown = 'clean';
        return true;
      } catch (error) {
        results.teardown = 'residual';
        log(`!! ${error instanceof TeardownError ? error.message : `teardown of ${domain} failed: ${(error as Error).message}`}`);
        return false;
      }
    })();
    return tearingDown;
  };
  lifetime.onTeardown(async (signal) => void (await teardownOurs(signal)));

  return lifetime.run(async (signal) => {
    try {
      return await main(signal);
    } catch (error) {
      if (signal.aborted || !isBadInput(error)) throw error;
      // Bad input met mid-run (a tool missing from PATH, a planted lockfile, unparseable abra
      // output): one line naming it, exit 2, after the teardown like any other ending.
      log(`cc-ci run: ${(error as Error).message.replace(/^cc-ci: /, '')}`);
      return 2;
    }
  });

  async function main(signal: AbortSignal): Promise<number> {
    log(`== cc-ci run ${id}: recipe=${config.recipe} ref=${config.ref ?? '(catalogue)'} pr=${config.pr} domain=${domain} stages=${config.stages.join(',')} ==`);
    setupRunAbraDir(log);
    const state = createRunState();
    lifetime.onTeardown(() => removeRunState(state));
    const stale = removeStaleRunState();
    if (stale.length) log(`== removed ${stale.length} state files of runs that died: ${stale.join(', ')} ==`);
    const tools = { abra: abraClient({ server: config.server, log, signal }), docker: dockerClient({ log, signal }), log };

    const tree = await fetchRecipe({ ...config, ref: config.ref ?? undefined, src: config.src ?? undefined, abra: tools.abra, log, signal });
    const head = await headCommit(tree);
    const tests = snapshotTests(tree, dir);

    const report = await janitor({ ...defaultJanitorHooks({ log, signal }), log });
    log(`== janitor: reaped [${report.reaped.join(', ')}], live [${report.live.join(', ')}], skipped ${report.skipped.length} ==`);

    await deployApp({ ...tools, recipe: config.recipe, domain, tree, signal, convergeTimeoutMs: config.convergeTimeoutMs });
    results.deploys = 1;

    const context: StageContext = { ...tools, recipe: config.recipe, domain, stack: stackName(domain), runId: id, tree, head, tests, signal, convergeTimeoutMs: config.convergeTimeoutMs };
    for (const name of config.stages) {
      const began = Date.now();
      const record = (result: Omit<StageResult, 'name' | 'durationMs'>): void => {
        results.stages.push({ name, ...result, durationMs: Date.now() - began });
      };
      if (results.stages.some((s) => s.name === 'install' && s.verdict === 'fail')) {
        record({ verdict: 'skip', reason: 'install failed' });
        continue;
      }
      log(`== stage ${name} ==`);
      try {
        record(await STAGE_RUNNERS[name](context));
      } catch (error) {
        if (signal.aborted) throw error;
        log(`!! stage ${name} failed: ${(error as Error).message}`);
        record({ verdict: 'fail', reason: (error as Error).message.split('\n')[0] });
      }
    }

    const clean = await teardownOurs();
    return results.stages.some((s) => s.verdict === 'fail') || !clean ? 1 : 0;
  }
}

const LOCKFILE_REFUSALS = new Set(['EISDIR', 'EFTYPE', 'ELOOP', 'EPERM', 'EACCES', 'EROFS', 'ENOENT']);

/** An InputError, a refused lock dir, or a lockfile the lock module refused (SPEC §5). */
function isBadInput(error: unknown): boolean {
  if (error instanceof InputError) return true;
  const { code, path } = (error ?? {}) as { code?: unknown; path?: unknown };
  if (code === 'ERR_CCCI_LOCK_DIR') return true;
  return typeof code === 'string' && LOCKFILE_REFUSALS.has(code) && typeof path === 'string' && path.endsWith('.lock');
}
