// `cc-ci run`, top to bottom: guards → per-run dirs → fetch → janitor → deploy (under the app lock)
// → stages → teardown → results. Each step is one call; docs/concurrency.md explains why the order
// is what it is, docs/recipes.md what the stages do with the recipe.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { ensureRunDir, runId, setupRunAbraDir } from '../../lib/abra-dir.js';
import { EXIT, exitCodeFor, isExpected, type RunAbortedError } from '../../lib/errors.js';
import { installLifetimeGuards, type Lifetime } from '../../lib/lifetime.js';
import { appDomain, stackName } from '../../lib/naming.js';
import { createRunState, deployCount, removeRunState, removeStaleRunState, runStateEnv, type RunStateFiles } from '../../lib/run-state.js';
import { defaultJanitorHooks } from '../host/discovery.js';
import { createLog, type Log } from '../host/log.js';
import { locking } from '../host/locking.js';
import { timings } from '../host/timings.js';
import { hostTools, type HostTools } from '../host/tools.js';
import type { RunConfig } from './config.js';
import { type CcciContract, readContract, setEnvKeys } from './contract.js';
import { deployApp } from './deploy.js';
import { deployDeps } from './deps.js';
import { healthSpec, type IngressConfig } from './health.js';
import { chooseLane, runQuickLane } from './quick.js';
import { fetchRecipe, headCommit } from './recipe.js';
import { assembleTests } from './recipe-tests.js';
import { finishResults, type RunResults, runFailure, type StageChecks, startResults } from './results.js';
import { hook, runStages, type StageContext } from './stages.js';
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
  // The app locks, for the process's life. Registered second, so they go after the teardown: on
  // etcd, a revoke (flock needs nothing: the exit lets go). A lost etcd lease ends the run through
  // the funnel, with a code of its own (docs/scale-out.md#self-abort).
  const locks = locking({
    runId: results.runId,
    kind: 'run',
    log,
    onLost: (why) =>
      lifetime.abort(
        `== etcd lease lost (${why}) — stopping, tearing down what the abort time allows ==`,
        EXIT.leaseLost,
        `lost the etcd lease: ${why}`,
      ),
  });
  lifetime.onTeardown(async () => {
    const held = await locks;
    results.lock = { backend: held.backend, generations: held.generations() };
    await held.releaseAll();
  });
  // The quick lane's warm app rolled back first; then the run's own app and its dependencies in
  // reverse declaration order.
  let rollback: ((signal?: AbortSignal) => Promise<boolean>) | null = null;
  const ownApps = ownTeardown(
    () => [domain, ...results.deps.map((dep) => dep.domain).reverse()],
    (signal) => hostTools({ server: config.server, log, signal }),
    (torn, outcome) => {
      if (torn === domain) results.teardown = outcome;
      else for (const dep of results.deps) if (dep.domain === torn) dep.teardown = outcome;
    },
  );
  const teardown = async (signal?: AbortSignal): Promise<boolean> => {
    const back = rollback === null || (await rollback(signal));
    return (await ownApps(signal)) && back;
  };
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
    // Node's start, loading cc-ci, the guards and the run dir: from the process's start to here.
    timings.spanSince('start', 0);
    log(
      `== cc-ci run ${results.runId}: recipe=${config.recipe} ref=${config.ref ?? '(catalogue)'} pr=${config.pr} domain=${domain} stages=${config.stages.join(',')} ==`,
    );
    const tools = hostTools({ server: config.server, log, signal });
    const state = perRunDirs(dir, lifetime, log);
    const recipe = await timings.span('fetch', () => fetchWithContract(config, { dir, tools, signal }));
    await timings.span('janitor', () => sweep(log, signal));
    const warm = config.quick ? await chooseLane(config.recipe, config.warmApps, tools, results) : null;
    const ctx = stageContext(config, { domain: warm?.domain ?? domain, runId: results.runId, dir, tools, state, recipe, signal, results });
    if (warm === null)
      await runStages(ctx, results, {
        names: config.stages,
        gate: 'install',
        deploy: (checks) => deployOnce(config, ctx, results, checks),
      });
    else {
      const rollbackContext = (on?: AbortSignal) => ({
        ...hostTools({ server: config.server, log, signal: on }),
        ...rollbackSettings(config, recipe),
      });
      await runQuickLane({ warm, ctx, results, rollbackContext }, (back) => (rollback = back));
    }
    await teardown();
    const failure = runFailure(results);
    if (failure === null) return EXIT.ok;
    results.exitReason = failure.message;
    return exitCodeFor(failure);
  }
}

/** What a rollback of the warm app needs besides the host tools: the run's tree, the ingress, the converge timeout. */
function rollbackSettings(config: RunConfig, recipe: FetchedRecipe): { tree: string; ingress: IngressConfig; convergeTimeoutMs: number } {
  return { tree: recipe.tree, ingress: config.ingress, convergeTimeoutMs: config.convergeTimeoutMs };
}

/** The per-run ABRA_DIR and the run's fresh state files (the state of dead attempts removed). */
function perRunDirs(dir: string, lifetime: Lifetime, log: Log): RunStateFiles {
  setupRunAbraDir(log);
  const stale = removeStaleRunState(dir);
  if (stale.length) log(`== removed the state of ${stale.length} earlier attempts of this run that died: ${stale.join(', ')} ==`);
  const state = createRunState(dir);
  lifetime.onTeardown(() => removeRunState(state));
  return state;
}

interface FetchedRecipe {
  /** The run's recipe tree and the code under test's commit in it. */
  tree: string;
  head: string;
  /** The run's tests dir (null: none), and its ccci.yml. */
  tests: string | null;
  contract: CcciContract;
}

/** The recipe at the code under test, its tests dir (the recipe's and the operator's) and ccci.yml. */
async function fetchWithContract(config: RunConfig, run: { dir: string; tools: HostTools; signal: AbortSignal }): Promise<FetchedRecipe> {
  const { log } = run.tools;
  const fetchOptions = {
    ...config,
    ref: config.ref ?? undefined,
    src: config.src ?? undefined,
    abra: run.tools.abra,
    log,
    signal: run.signal,
  };
  const tree = await fetchRecipe(fetchOptions);
  const head = await headCommit(tree);
  const tests = assembleTests({ tree, operatorDir: config.operatorTests, runDir: run.dir, log });
  const contract = readContract(tests, { recipe: config.recipe, maxDeps: config.maxDeps });
  if (contract.deps.length > 0) {
    const names = contract.deps.map((dep) => dep.recipe + (dep.version ? ` ${dep.version}` : '')).join(', ');
    log(`== ccci.yml declares dependencies (${names}): deployed when the custom stage begins ==`);
  }
  return { tree, head, tests, contract };
}

/** The janitor's sweep at the run's start: the apps of dead runs go, live runs stay. */
async function sweep(log: Log, signal: AbortSignal): Promise<void> {
  const swept = await (await locking()).janitor({ ...defaultJanitorHooks({ log, signal }), log });
  log(`== janitor: reaped [${swept.reaped.join(', ')}], live [${swept.live.join(', ')}], skipped ${swept.skipped.length} ==`);
}

/** What every stage works with: the app, the host tools, the recipe, its contract and the run's settings. */
function stageContext(
  config: RunConfig,
  run: {
    domain: string;
    runId: string;
    dir: string;
    tools: HostTools;
    state: RunStateFiles;
    recipe: FetchedRecipe;
    signal: AbortSignal;
    results: RunResults;
  },
): StageContext {
  const { domain, tools, state, recipe, signal } = run;
  const { ingress, convergeTimeoutMs, gitBase } = config;
  const stack = stackName(domain);
  const { health, env } = recipe.contract;
  return {
    ...tools,
    ...{ recipe: config.recipe, domain, stack, runId: run.runId, tree: recipe.tree, head: recipe.head, tests: recipe.tests },
    scriptEnv: contractEnv(config, env, { domain, stack, tree: recipe.tree, state, artifacts: join(run.dir, 'artifacts') }),
    envKeys: env,
    health: healthSpec(health),
    ...{ testTimeoutMs: config.testTimeoutMs, ingress, convergeTimeoutMs },
    state,
    signal,
    checks: { health: [], hooks: [], tests: [] },
    // Recorded in results.json as they go: teardown reads the same list.
    dependencies: (health) =>
      deployDeps(
        { ...tools, domain, declared: recipe.contract.deps, gitBase, ingress, convergeTimeoutMs, state, signal, health },
        run.results.deps,
      ),
  };
}

/**
 * The run's one deploy, under the app lock. Between `abra app new` and the deploy: ccci.yml's env
 * keys, then install_steps.sh (recorded in install's `checks`). The deploy count goes to results.
 */
async function deployOnce(config: RunConfig, ctx: StageContext, results: RunResults, checks: StageChecks): Promise<void> {
  const beforeDeploy = async (): Promise<void> => {
    setEnvKeys(ctx.abra.envPath(ctx.domain), ctx.envKeys);
    await hook({ ...ctx, checks }, 'installSteps');
  };
  try {
    await timings.span('deploy', () => deployApp({ ...ctx, recipe: config.recipe, beforeDeploy }));
  } finally {
    results.deploys = deployCount(ctx.state);
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
    CCCI_INGRESS: config.ingress.address,
    ...(config.ingress.caFile ? { CCCI_INGRESS_CA: config.ingress.caFile } : {}),
    CCCI_RECIPE_DIR: run.tree,
    ABRA_DIR: process.env.ABRA_DIR!,
    CCCI_OP_STATE_FILE: CCCI_OP_STATE_FILE!,
    CCCI_DEPS_FILE: CCCI_DEPS_FILE!,
    CCCI_DEPS_SKIP_REPORT: CCCI_DEPS_SKIP_REPORT!,
    CCCI_ARTIFACTS_DIR: run.artifacts,
  };
}
