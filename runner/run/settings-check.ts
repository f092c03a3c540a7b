// The settings rows of `cc-ci doctor`: every variable cc-ci reads, checked by the validator the
// code itself calls (so doctor and a run never disagree on a value), one fail row per bad one with
// the message the run would stop with; and a warn for a CCCI_* name cc-ci never reads (a typo).
import { InputError } from '../../lib/errors.js';
import { type Check, why } from '../host/checks.js';
import { ETCD_VARIABLES, envSettings } from './config.js';

/** Every CCCI_* variable cc-ci reads: the CCCI_* rows of docs/concurrency.md#configuration-knobs. */
export const KNOWN_VARIABLES: readonly string[] = [
  'CCCI_APP_LOCK_DIR',
  'CCCI_LEGACY_LOCK_DIR',
  'CCCI_BASE_DOMAIN',
  'CCCI_DEADLINE_SECONDS',
  'CCCI_TEARDOWN_BUDGET_SECONDS',
  'CCCI_EXPECTED_PPID',
  'CCCI_RUN_ID',
  'CCCI_RUNS_DIR',
  'CCCI_GIT_BASE',
  'CCCI_GIT_TOKEN',
  'CCCI_SERVER',
  'CCCI_CONVERGE_TIMEOUT_SECONDS',
  'CCCI_SKIP_FETCH',
  'CCCI_QUICK',
  'CCCI_WARM_APPS',
  'CCCI_DEPLOY_COUNT_FILE',
  'CCCI_OP_STATE_FILE',
  'CCCI_DEPS_FILE',
  'CCCI_DEPS_SKIP_REPORT',
  'CCCI_INGRESS',
  'CCCI_INGRESS_CA',
  'CCCI_HEALTH',
  'CCCI_TESTS_DIR',
  'CCCI_TEST_TIMEOUT_SECONDS',
  'CCCI_MAX_DEPS',
  ...ETCD_VARIABLES,
];

interface Setting {
  variables: readonly string[];
  /** Throws the InputError the code would for a bad value. Library modules are imported here, so
   * an addon that does not load fails only the settings that need it. */
  validate(): unknown;
}

const LIBRARY_SETTINGS: Setting[] = [
  { variables: ['CCCI_APP_LOCK_DIR'], validate: async () => (await import('../../lib/lockfiles.js')).lockDir() },
  { variables: ['CCCI_LEGACY_LOCK_DIR'], validate: async () => (await import('../../lib/lockfiles.js')).legacyLockDir() },
  { variables: ['CCCI_RUNS_DIR'], validate: async () => (await import('../../lib/abra-dir.js')).runsDir() },
  // The run id only when one is set: unset, each run is manual-<pid>.
  {
    variables: ['CCCI_RUN_ID', 'DRONE_BUILD_NUMBER'],
    validate: async () =>
      process.env.CCCI_RUN_ID || process.env.DRONE_BUILD_NUMBER ? (await import('../../lib/abra-dir.js')).runId() : null,
  },
  { variables: ['CCCI_BASE_DOMAIN'], validate: async () => (await import('../../lib/naming.js')).baseDomain() },
  { variables: ['CCCI_DEADLINE_SECONDS'], validate: async () => (await import('../../lib/lifetime.js')).resolveDeadlineSeconds() },
  {
    variables: ['CCCI_TEARDOWN_BUDGET_SECONDS'],
    validate: async () => (await import('../../lib/lifetime.js')).resolveTeardownBudgetSeconds(),
  },
];

/** The rows: a fail per bad setting, a warn naming unknown CCCI_* variables, else one pass. */
export async function checkSettings(env: NodeJS.ProcessEnv = process.env): Promise<Check[]> {
  const settings: Setting[] = [
    ...LIBRARY_SETTINGS,
    ...Object.values(envSettings()).map(({ variables, parse }) => ({ variables, validate: () => parse(env) })),
  ];
  const checks: Check[] = [];
  for (const { variables, validate } of settings) {
    try {
      await validate();
    } catch (error) {
      // The row is named after the variable the message names (CCCI_INGRESS reads three).
      const message = why(error);
      const variable = variables.find((name) => message.includes(name)) ?? variables.join(', ');
      const fix =
        error instanceof InputError
          ? `set ${variable} as docs/concurrency.md#configuration-knobs says, or unset it for the default`
          : 'see the addon row';
      checks.push({ name: `setting ${variable}`, status: 'fail', detail: message, fix });
    }
  }
  const set = Object.keys(env).filter((name) => name.startsWith('CCCI_') && env[name] !== '');
  const unknown = set.filter((name) => !KNOWN_VARIABLES.includes(name)).sort();
  if (unknown.length > 0) {
    checks.push({
      name: 'unknown settings',
      status: 'warn',
      detail: `cc-ci reads none of ${unknown.join(', ')}`,
      fix: 'check the spelling against docs/concurrency.md#configuration-knobs, or unset them',
    });
  }
  if (checks.every((check) => check.status !== 'fail')) {
    const known = set.length - unknown.length;
    checks.unshift({
      name: 'settings',
      status: 'pass',
      detail: `${known} CCCI_* variable${known === 1 ? '' : 's'} set, every setting valid`,
    });
  }
  return checks;
}
