// The cc-ci library, by name: what is listed here is the public surface (docs/api.md); everything
// else under lib/ is internal and may change. The addon's raw exports live in 'cc-ci/native'.
export {
  abraDir,
  canonicalAbraDir,
  DEFAULT_RUNS_DIR,
  ensureRunDir,
  recipeDir,
  runDir,
  runId,
  runsDir,
  setupRunAbraDir,
} from './abra-dir.js';
export {
  CcciError,
  CommandError,
  EXIT,
  exitCodeFor,
  InputError,
  RunAbortedError,
  RunFailedError,
  TeardownError,
  type CcciErrorOptions,
  type Residual,
  type RunEnd,
} from './errors.js';
export { janitor, type Discover, type JanitorOptions, type JanitorReport, type LongHeld, type Skipped, type Teardown } from './janitor.js';
export {
  DEFAULT_DEADLINE_SECONDS,
  DEFAULT_TEARDOWN_BUDGET_SECONDS,
  installLifetimeGuards,
  MAX_LIFETIME_SECONDS,
  resolveDeadlineSeconds,
  UNWIND_GRACE_MS,
  type GuardedSignal,
  type Lifetime,
  type LifetimeOptions,
  type TeardownStep,
} from './lifetime.js';
export { acquireAppLock, heldAppLocks, probeLock, WAIT_LOG_GRACE_MS, type AcquireOptions, type HeldLock } from './lock.js';
export {
  DEFAULT_LOCK_DIR,
  domainOfLockfile,
  ensureLockDir,
  holderOf,
  inspectAppLocks,
  legacyLockDir,
  listLockfiles,
  lockDir,
  LOCKFILE_PREFIX,
  LOCKFILE_SUFFIX,
  lockfileName,
  lockHolders,
  lockPath,
  type AppLockInfo,
  type LockHolder,
  type LockState,
} from './lockfiles.js';
export {
  appDomain,
  depDomain,
  assertDomain,
  assertRecipe,
  baseDomain,
  DEFAULT_BASE_DOMAIN,
  domainFromServiceName,
  isRunApp,
  MAX_STACK_NAME_LENGTH,
  runAppPattern,
  stackName,
} from './naming.js';
export {
  createRunState,
  deployCount,
  readDepsSkipReport,
  readOpState,
  recordDeploy,
  removeRunState,
  removeStaleRunState,
  runStateEnv,
  runStatePath,
  writeOpState,
  type RunStateFiles,
} from './run-state.js';
