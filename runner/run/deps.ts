// A recipe's dependencies (ccci.yml `deps`): other recipes its tests need, each deployed as an app
// of the run's own when the custom stage begins, described to the tests in CCCI_DEPS_FILE, and torn
// down after the app (teardown.ts ownTeardown). A dependency that fails is recorded as not ready,
// never fatal: the custom stage's verdict says so. docs/recipes.md#dependencies
import { join } from 'node:path';

import { CcciError, CommandError, EXIT, exitCodeFor } from '../../lib/errors.js';
import { depDomain, stackName } from '../../lib/naming.js';
import { type RunStateFiles, writeFileAtomically } from '../../lib/run-state.js';
import { timings } from '../host/timings.js';
import type { HostTools } from '../host/tools.js';
import { type DepContract, readContract, setEnvKeys } from './contract.js';
import { takeApp } from './deploy.js';
import { checkHealth, healthSpec, type IngressConfig } from './health.js';
import { declaresSecrets, fetchRecipe, publishedVersions } from './recipe.js';
import type { Check } from './results.js';

/** One dependency as results.json records it. */
export interface DepResult {
  recipe: string;
  domain: string;
  stack: string;
  url: string;
  /** The dependency's .env in the run's ABRA_DIR. */
  envFile: string;
  /** The version deployed: ccci.yml's, else the latest published; null when the recipe has none. */
  version: string | null;
  ready: boolean;
  /** Why it is not ready. */
  error?: string;
  /** From taking its lock to ready (or failed). */
  deployMs: number;
  /** `clean`, `residual`, or `skipped` (its lock was never taken). */
  teardown: 'clean' | 'residual' | 'skipped';
}

export interface DepsContext extends HostTools {
  /** The app under test: the dependencies' domains derive from it. */
  domain: string;
  declared: readonly DepContract[];
  gitBase: string;
  ingress: IngressConfig;
  convergeTimeoutMs: number;
  state: RunStateFiles;
  signal: AbortSignal;
  /** Where each dependency's health check is recorded (the custom stage's). */
  health: Check[];
}

/**
 * Deploys the declared dependencies in order, each recorded in `records` (results.json's list,
 * which teardown reads) before its lock is taken, and CCCI_DEPS_FILE rewritten after each
 * settles. An abort, or bad input (a planted lockfile), ends it all; any other failure leaves that
 * dependency not ready and goes on to the next.
 */
export async function deployDeps(ctx: DepsContext, records: DepResult[]): Promise<DepResult[]> {
  const { log, abra } = ctx;
  for (const dep of ctx.declared) {
    const domain = depDomain(ctx.domain, dep.recipe);
    const record: DepResult = {
      ...{ recipe: dep.recipe, domain, stack: stackName(domain), url: `https://${domain}`, envFile: abra.envPath(domain) },
      ...{ version: dep.version ?? null, ready: false, deployMs: 0, teardown: 'skipped' },
    };
    records.push(record);
    const began = Date.now();
    log(`== dependency ${dep.recipe}: deploying as ${domain} ==`);
    try {
      await timings.span(`dep ${dep.recipe}`, () => deployDep(ctx, dep, record));
      record.ready = true;
      log(`== dependency ${dep.recipe}: ready at ${record.url} (${record.version ?? 'unversioned'}) ==`);
    } catch (error) {
      if (ctx.signal.aborted || exitCodeFor(error) === EXIT.badInput) throw error;
      record.error = why(error);
      log(`!! dependency ${dep.recipe} (${domain}) is not ready: ${record.error}`);
    } finally {
      record.deployMs = Date.now() - began;
      writeDepsFile(ctx.state, records);
    }
  }
  return records;
}

/** Lock, fetch into the run's ABRA_DIR, `app new` at the version, secrets, deploy, converge, health. */
async function deployDep(ctx: DepsContext, dep: DepContract, record: DepResult): Promise<void> {
  const { abra, docker, log, signal } = ctx;
  const { domain, stack } = record;
  await takeApp(domain, ctx, `dependency ${dep.recipe}`);
  const tree = await fetchRecipe({ recipe: dep.recipe, gitBase: ctx.gitBase, abra, log, signal });
  record.version = dep.version ?? (await publishedVersions(tree)).at(-1) ?? null;
  // abra checks the tree out at the version: what the dependency declares is read after that.
  await abra.appNew(dep.recipe, domain, { version: record.version ?? undefined });
  const contract = dependencyContract(tree);
  if (contract.deps.length > 0) log(`== dependency ${dep.recipe}: its own deps are not deployed (one level only) ==`);
  setEnvKeys(record.envFile, contract.env);
  if (declaresSecrets(tree)) await abra.secretGenerate(domain);
  await abra.appDeploy(domain);
  await docker.waitConverged(stack, ctx.convergeTimeoutMs);
  await docker.waitHealthy(stack, ctx.convergeTimeoutMs);
  const check = await checkHealth({ ingress: ctx.ingress, domain, spec: healthSpec(contract.health), signal, log });
  ctx.health.push(check);
  if (check.verdict === 'fail') throw new CcciError('ERR_CCCI_HEALTH', check.reason!);
}

/** The dependency's own ccci.yml (health, env); a bad one is the dependency's failure, not the run's bad input. */
function dependencyContract(tree: string): ReturnType<typeof readContract> {
  try {
    return readContract(join(tree, 'tests'));
  } catch (error) {
    throw new CcciError('ERR_CCCI_DEPENDENCY', `its ${(error as Error).message}`);
  }
}

/** An error on one line: a failed command's own line, then the last line it printed (abra's FATA: the why). */
function why(error: unknown): string {
  const first = (error as Error).message.split('\n')[0]!;
  if (!(error instanceof CommandError)) return first;
  const last = error.output
    .split('\n')
    .filter((line) => line.trim() !== '')
    .at(-1);
  return last === undefined ? first : `${first}: ${last.trim()}`;
}

/** CCCI_DEPS_FILE: `{"<recipe>": {domain, stack, url, envFile, version, ready, error?}}` of every dependency settled so far. */
function writeDepsFile(state: RunStateFiles, records: readonly DepResult[]): void {
  const settled = records.filter((record) => record.ready || record.error !== undefined);
  const entries = settled.map(({ recipe, domain, stack, url, envFile, version, ready, error }) => [
    recipe,
    { domain, stack, url, envFile, version, ready, ...(error === undefined ? {} : { error }) },
  ]);
  writeFileAtomically(state.deps, `${JSON.stringify(Object.fromEntries(entries), null, 2)}\n`);
}

/**
 * Why the custom stage fails for its dependencies, or null: any dependency not ready, or any line
 * in the skip report (a run with a missing dependency is never green). Names the count of skips
 * and each failed dependency's error.
 */
export function depsVerdict(records: readonly DepResult[], skips: readonly string[]): string | null {
  const notReady = records.filter((record) => !record.ready);
  if (notReady.length === 0 && skips.length === 0) return null;
  const count = `${skips.length} test${skips.length === 1 ? '' : 's'} skipped for a dependency that is not ready`;
  if (notReady.length === 0) return `${count} (${skips.join('; ')}), though every dependency is ready`;
  const why = notReady.map((record) => `${record.recipe} (${record.domain}): ${record.error ?? 'not deployed'}`).join('; ');
  return skips.length === 0 ? `not ready: ${why}` : `${count}; not ready: ${why}`;
}
