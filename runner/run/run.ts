// `cc-ci run`, top to bottom: guards → per-run dirs → fetch → janitor → deploy (under the app lock)
// → stages → teardown → results. Each step is one call into its own module; docs/concurrency.md
// explains why the order is what it is.
import { join } from 'node:path';

import { ensureRunDir, runId, setupRunAbraDir } from '../../lib/abra-dir.js';
import { EXIT, exitCodeFor, isExpected, RunAbortedError } from '../../lib/errors.js';
import { janitor } from '../../lib/janitor.js';
import { installLifetimeGuards } from '../../lib/lifetime.js';
import { appDomain, stackName } from '../../lib/naming.js';
import { createRunState, removeRunState, removeStaleRunState } from '../../lib/run-state.js';
import { defaultJanitorHooks } from '../host/discovery.js';
import { createLog } from '../host/log.js';
import { hostTools } from '../host/tools.js';
import type { RunConfig } from './config.js';
import { deployApp } from './deploy.js';
import { fetchRecipe, headCommit, snapshotTests } from './recipe.js';
import { finishResults, runFailure, startResults } from './results.js';
import { runStages } from './stages.js';
import { ownTeardown } from './teardown.js';

export async function runRecipeCi(config: RunConfig): Promise<never> {
  const dir = ensureRunDir();
  const log = createLog(join(dir, 'run.log'));
  // Before any lock, abra call or subprocess: the run's lifetime is bounded from here on.
  const lifetime = installLifetimeGuards({ log });
  const domain = appDomain(config.recipe, config.pr, config.ref ?? '');
  const results = startResults(config, domain, runId(), join(dir, 'run.log'));
  // Registered first, so it runs last: whatever way the run ends, results.json says how.
  lifetime.onTeardown(() => finishResults(results, lifetime.signal.reason as RunAbortedError, dir, log));
  const teardown = ownTeardown(domain, (signal) => hostTools({ server: config.server, log, signal }), (outcome) => (results.teardown = outcome));
  lifetime.onTeardown(async (signal) => void (await teardown(signal)));

  return lifetime.run(async (signal) => {
    try {
      return await main(signal);
    } catch (error) {
      if (signal.aborted || !isExpected(error)) throw error;
      // A failure cc-ci names (bad input met mid-run, a command that failed outside a stage): its
      // line, then the exit code it calls for, after the teardown like any other ending.
      log(`cc-ci run: ${error.message.replace(/^cc-ci: /, '')}`);
      return exitCodeFor(error);
    }
  });

  async function main(signal: AbortSignal): Promise<number> {
    log(`== cc-ci run ${results.runId}: recipe=${config.recipe} ref=${config.ref ?? '(catalogue)'} pr=${config.pr} domain=${domain} stages=${config.stages.join(',')} ==`);
    const tools = hostTools({ server: config.server, log, signal });

    setupRunAbraDir(log);
    const stale = removeStaleRunState(dir);
    if (stale.length) log(`== removed the state of ${stale.length} earlier attempts of this run that died: ${stale.join(', ')} ==`);
    const state = createRunState(dir);
    lifetime.onTeardown(() => removeRunState(state));

    const tree = await fetchRecipe({ ...config, ref: config.ref ?? undefined, src: config.src ?? undefined, abra: tools.abra, log, signal });
    const head = await headCommit(tree);
    const tests = snapshotTests(tree, dir);

    const swept = await janitor({ ...defaultJanitorHooks({ log, signal }), log });
    log(`== janitor: reaped [${swept.reaped.join(', ')}], live [${swept.live.join(', ')}], skipped ${swept.skipped.length} ==`);

    await deployApp({ ...tools, recipe: config.recipe, domain, tree, state, signal, convergeTimeoutMs: config.convergeTimeoutMs });
    results.deploys = 1;

    const stack = stackName(domain);
    await runStages({ ...tools, recipe: config.recipe, domain, stack, runId: results.runId, tree, head, tests, state, signal, convergeTimeoutMs: config.convergeTimeoutMs }, config.stages, results);

    await teardown();

    const failure = runFailure(results);
    return failure === null ? EXIT.ok : exitCodeFor(failure);
  }
}
