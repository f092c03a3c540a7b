// `cc-ci run`, top to bottom: guards → per-run dirs → fetch → janitor → deploy (under the app lock)
// → stages → teardown → results. Each step is one call into its own module; docs/concurrency.md
// explains why the order is what it is.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { ensureRunDir, runId, setupRunAbraDir } from '../../lib/abra-dir.js';
import { EXIT, exitCodeFor, isExpected, type RunAbortedError } from '../../lib/errors.js';
import { janitor } from '../../lib/janitor.js';
import { installLifetimeGuards } from '../../lib/lifetime.js';
import { appDomain, stackName } from '../../lib/naming.js';
import { createRunState, deployCount, removeRunState, removeStaleRunState, runStateEnv, type RunStateFiles } from '../../lib/run-state.js';
import { defaultJanitorHooks } from '../host/discovery.js';
import { createLog } from '../host/log.js';
import { hostTools } from '../host/tools.js';
import type { RunConfig } from './config.js';
import { deployApp } from './deploy.js';
import { fetchRecipe, headCommit } from './recipe.js';
import { assembleTests } from './recipe-tests.js';
import { readContract, setEnvKeys } from './contract.js';
import { finishResults, runFailure, startResults, type StageChecks } from './results.js';
import { hook, runStages } from './stages.js';
import { ownTeardown } from './teardown.js';

export async function runRecipeCi(config: RunConfig): Promise<never> {
  // The git token goes to the one git command that needs it (config.token), never to a child by
  // inheritance: abra, docker and the recipe's own hooks and tests must not see it.
  delete process.env.CCCI_GIT_TOKEN;
  const dir = ensureRunDir();
  const log = createLog(join(dir, 'run.log'));
  // Before any lock, abra call or subprocess: the run's lifetime is bounded from here on.
  const lifetime = installLifetimeGuards({ log });
  const domain = appDomain(config.recipe, config.pr, config.ref ?? '');
  const results = startResults(config, domain, runId(), join(dir, 'run.log'));
  // Registered first, so it runs last: whatever way the run ends, results.json says how.
  lifetime.onTeardown(() => finishResults(results, lifetime.signal.reason as RunAbortedError, dir, log));
  const teardown = ownTeardown(
    domain,
    (signal) => hostTools({ server: config.server, log, signal }),
    (outcome) => (results.teardown = outcome),
  );
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
    log(
      `== cc-ci run ${results.runId}: recipe=${config.recipe} ref=${config.ref ?? '(catalogue)'} pr=${config.pr} domain=${domain} stages=${config.stages.join(',')} ==`,
    );
    const tools = hostTools({ server: config.server, log, signal });

    setupRunAbraDir(log);
    const stale = removeStaleRunState(dir);
    if (stale.length) log(`== removed the state of ${stale.length} earlier attempts of this run that died: ${stale.join(', ')} ==`);
    const state = createRunState(dir);
    lifetime.onTeardown(() => removeRunState(state));

    const tree = await fetchRecipe({
      ...config,
      ref: config.ref ?? undefined,
      src: config.src ?? undefined,
      abra: tools.abra,
      log,
      signal,
    });
    const head = await headCommit(tree);
    const tests = assembleTests({ tree, operatorDir: config.operatorTests, runDir: dir, log });
    const contract = readContract(tests);
    if (contract.deps.length > 0) {
      log(
        `== ccci.yml declares dependencies (${contract.deps.map((dep) => dep.recipe).join(', ')}): this cc-ci does not deploy them yet; tests that need them should skip (exit 77) ==`,
      );
    }

    const swept = await janitor({ ...defaultJanitorHooks({ log, signal }), log });
    log(`== janitor: reaped [${swept.reaped.join(', ')}], live [${swept.live.join(', ')}], skipped ${swept.skipped.length} ==`);

    const stack = stackName(domain);
    const scriptEnv = contractEnv(config, contract.env, { domain, stack, tree, state, artifacts: join(dir, 'artifacts') });
    const health = { path: contract.health.path, status: contract.health.status, timeoutMs: contract.health.timeoutSeconds * 1000 };
    const stages = {
      ...{
        ...tools,
        recipe: config.recipe,
        domain,
        stack,
        runId: results.runId,
        tree,
        head,
        tests,
        scriptEnv,
        envKeys: contract.env,
        health,
        state,
        signal,
      },
      ...{
        testTimeoutMs: config.testTimeoutMs,
        ingress: config.ingress,
        convergeTimeoutMs: config.convergeTimeoutMs,
        checks: { health: [], hooks: [], tests: [] },
      },
    };
    // Between `abra app new` and the first deploy: ccci.yml's env keys, then install_steps.sh.
    const beforeDeploy = (checks: StageChecks) => async () => {
      setEnvKeys(tools.abra.envPath(domain), contract.env);
      await hook({ ...stages, checks }, 'installSteps');
    };
    await runStages(stages, config.stages, results, async (checks) => {
      try {
        await deployApp({
          ...tools,
          recipe: config.recipe,
          domain,
          tree,
          state,
          signal,
          convergeTimeoutMs: config.convergeTimeoutMs,
          beforeDeploy: beforeDeploy(checks),
        });
      } finally {
        results.deploys = deployCount(state);
      }
    });

    await teardown();

    const failure = runFailure(results);
    return failure === null ? EXIT.ok : exitCodeFor(failure);
  }
}

/**
 * The whole environment a recipe's hooks and tests get: the contract's variables, PATH, HOME and
 * LANG, and nothing else of the runner's (docs/recipes.md#environment, docs/threat-model.md).
 */
function contractEnv(
  config: RunConfig,
  extra: Record<string, string>,
  run: { domain: string; stack: string; tree: string; state: RunStateFiles; artifacts: string },
): Record<string, string> {
  mkdirSync(run.artifacts, { recursive: true });
  const { CCCI_OP_STATE_FILE, CCCI_DEPS_FILE, CCCI_DEPS_SKIP_REPORT } = runStateEnv(run.state);
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: process.env.HOME ?? '/',
    LANG: process.env.LANG ?? 'C.UTF-8',
    ...extra,
    DOMAIN: run.domain,
    STACK_NAME: run.stack,
    RECIPE: config.recipe,
    CCCI_APP_URL: `https://${run.domain}`,
    CCCI_INGRESS: `${config.ingress.host.includes(':') ? `[${config.ingress.host}]` : config.ingress.host}:${config.ingress.port}`,
    ...(config.ingress.caFile ? { CCCI_INGRESS_CA: config.ingress.caFile } : {}),
    CCCI_RECIPE_DIR: run.tree,
    ABRA_DIR: process.env.ABRA_DIR!,
    CCCI_OP_STATE_FILE: CCCI_OP_STATE_FILE!,
    CCCI_DEPS_FILE: CCCI_DEPS_FILE!,
    CCCI_DEPS_SKIP_REPORT: CCCI_DEPS_SKIP_REPORT!,
    CCCI_ARTIFACTS_DIR: run.artifacts,
  };
}
