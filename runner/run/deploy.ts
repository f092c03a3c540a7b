// The run's one deploy: refuse a second, take the app lock BEFORE the app exists, clear what a dead
// predecessor left, create the app, run what comes before the first deploy, count and make the deploy,
// and wait for it to converge.
import { CcciError } from '../../lib/errors.js';
import { stackName } from '../../lib/naming.js';
import { labelGeneration } from '../host/generation.js';
import { locking } from '../host/locking.js';
import { timings } from '../host/timings.js';
import { deployCount, recordDeploy, type RunStateFiles } from '../../lib/run-state.js';
import { declaresSecrets } from './recipe.js';
import { isEmpty, residual, teardownApp, type TeardownTools } from './teardown.js';

export interface DeployOptions extends TeardownTools {
  recipe: string;
  domain: string;
  /** The run's own recipe tree (checked out at the code under test). */
  tree: string;
  /** The run's state files: the deploy count lives there. */
  state: RunStateFiles;
  /** Runs after `abra app new`, before the first deploy (the install_steps.sh hook, the contract's env keys). */
  beforeDeploy?: () => Promise<void>;
  signal?: AbortSignal;
  convergeTimeoutMs: number;
}

/**
 * Takes `domain`'s app lock BEFORE the app exists (a concurrent janitor must never see the app
 * without its held lock), then removes whatever of `domain` is there: holding the lock, that can
 * only be what a run that died while we waited left, and no janitor can reap it any more.
 * `what` names the app in the log (`app`, `dependency keycloak`).
 */
export async function takeApp(domain: string, tools: TeardownTools & { signal?: AbortSignal }, what = 'app'): Promise<string | null> {
  // Waiting for another run's lock is that run's time, not cc-ci's.
  const lock = await timings.span(`lock ${domain}`, () =>
    timings.outsideOf(async () => (await locking()).acquire(domain, { signal: tools.signal, log: tools.log })),
  );
  tools.log(`== ${what} lock held: ${domain}${lock.generation === null ? '' : ` (etcd, generation ${lock.generation})`} ==`);
  const left = await residual(domain, tools);
  if (!isEmpty(left)) {
    tools.log(`== ${domain}: leftovers of a run that died while we waited (${JSON.stringify(left)}) — removing ==`);
    await teardownApp(domain, tools, true);
  }
  return lock.generation;
}

export async function deployApp(options: DeployOptions): Promise<void> {
  const { recipe, domain, abra, docker, log } = options;
  const made = deployCount(options.state);
  if (made > 0) throw new CcciError('ERR_CCCI_DEPLOY_COUNT', `deploy #${made + 1} in one run: a run deploys exactly once`);

  const generation = await takeApp(domain, options);

  await abra.appNew(recipe, domain, { secrets: declaresSecrets(options.tree), chaos: true });
  await options.beforeDeploy?.();
  recordDeploy(options.state);
  await abra.appDeploy(domain, { chaos: true });
  await docker.waitConverged(stackName(domain), options.convergeTimeoutMs);
  if (generation !== null) await labelGeneration(docker, stackName(domain), generation, options.signal);
  log(`== deployed ${domain} (code under test) ==`);
}
