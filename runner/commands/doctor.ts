// `cc-ci doctor [--json]`: is this host ready for cc-ci runs? One row per check, pass, warn or
// fail, and for a warn or a fail what to do. The checks (runner/host/checks.ts,
// runner/run/settings-check.ts) are imported in main, so `--help` loads none of them; they only
// look: doctor creates, writes and changes nothing on the host.
import { parseArgs } from 'node:util';

import { CcciError, EXIT } from '../../lib/errors.js';
import type { Check } from '../host/checks.js';
import { etcdEnvironment, print } from './output.js';

export const usage = `Usage: cc-ci doctor [--json]

Checks this host for cc-ci runs, each check on its own (one failing hides none), the slow ones at
once, none longer than 30 s: Node (>= 20.19), the addon loads, docker answers and this node is a
swarm manager, abra is on PATH, the lock dir and runs dir pass the run's own safety rules, every
setting below is valid (and no unknown CCCI_* is set), the ingress's TLS for the base domain (when
CCCI_INGRESS is set), the warm apps exist (when CCCI_WARM_APPS is set), and memory and disk for
DRONE_RUNNER_CAPACITY runs (when set). It creates, writes and changes nothing.

Options:
  --json      print {ok, checks: [{name, status: "pass"|"warn"|"fail", detail, fix?}]} on stdout
  -h, --help  this help

Environment:
  CCCI_APP_LOCK_DIR              the lock dir (default /run/lock)
  CCCI_LEGACY_LOCK_DIR           the old shared lock dir during a move (default unset)
  CCCI_RUNS_DIR                  the runs dir (default /var/lib/cc-ci-runs)
  CCCI_RUN_ID                    the run id, checked when set (default DRONE_BUILD_NUMBER, else
                                 manual-<pid>)
  DRONE_BUILD_NUMBER             the run id when CCCI_RUN_ID is unset (default unset)
  CCCI_BASE_DOMAIN               the base of app domains and of the TLS check's name
                                 (default ci.commoninternet.net)
  CCCI_DEADLINE_SECONDS          a run's hard deadline (default 3600)
  CCCI_TEARDOWN_BUDGET_SECONDS   a run's teardown budget (default 600)
  CCCI_SERVER                    the abra server the warm apps live on (default default)
  CCCI_GIT_BASE                  the git host (default https://git.autonomic.zone)
  CCCI_GIT_TOKEN                 checked for control characters, never shown (default unset)
  CCCI_CONVERGE_TIMEOUT_SECONDS  how long services may take to converge (default 600)
  CCCI_INGRESS                   the ingress host:port, its TLS checked when set
                                 (default unset: a run uses 127.0.0.1:443, unchecked here)
  CCCI_INGRESS_CA                CA certificates trusted besides the system's (default unset)
  CCCI_HEALTH                    on or off (default on)
  CCCI_TESTS_DIR                 the operator's tests (default /etc/cc-ci/tests)
  CCCI_TEST_TIMEOUT_SECONDS      how long one hook or test may run (default 900)
  CCCI_MAX_DEPS                  dependencies a ccci.yml may declare (default 5)
  CCCI_QUICK                     1 for the quick lane (default unset)
  CCCI_WARM_APPS                 warm app domains; set, each must exist (default unset)
  DRONE_RUNNER_CAPACITY          concurrent runs; set, memory and disk are checked (default unset)
  DOCKER_HOST                    the docker daemon (default unix:///var/run/docker.sock)
${etcdEnvironment(33)}

Exit codes: 0 nothing failed (warns allowed), 1 a check failed, 2 bad input (an unknown option).`;

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean' } }, strict: true, allowPositionals: false });
  const checks = await runChecks();
  const failed = checks.filter((check) => check.status === 'fail');
  if (values.json) print(1, JSON.stringify({ ok: failed.length === 0, checks }, null, 2));
  else print(1, formatChecks(checks));
  if (failed.length > 0) {
    throw new CcciError(
      'ERR_CCCI_DOCTOR',
      `${failed.length} check${failed.length === 1 ? '' : 's'} failed: ${failed.map((c) => c.name).join(', ')}`,
    );
  }
  return EXIT.ok;
}

/** Every check, at once, in the report's order; a check that throws (a bug) is a fail row, never lost. */
async function runChecks(env: NodeJS.ProcessEnv = process.env): Promise<Check[]> {
  const host = await import('../host/checks.js');
  const { dockerInfo } = await import('../host/engine.js');
  const { checkSettings } = await import('../run/settings-check.js');
  const settings = (await import('../run/config.js')).envSettings();
  const info = dockerInfo().then(
    (value) => ({ status: 'fulfilled', value }) as const,
    (reason: unknown) => ({ status: 'rejected', reason }) as const,
  );
  const safely = async (name: string, check: () => Check | Check[] | Promise<Check | Check[]>): Promise<Check[]> => {
    try {
      return [await check()].flat();
    } catch (error) {
      return [{ name, status: 'fail', detail: `doctor could not check: ${host.why(error)}`, fix: 'report this as a cc-ci bug' }];
    }
  };
  // A setting a check needs that is itself bad: its settings row fails, this one says why it did not look.
  const notChecked = (name: string, error: unknown): Check => ({
    name,
    status: 'warn',
    detail: `not checked: ${host.why(error)}`,
    fix: 'fix the setting (its row above)',
  });
  const rows = [
    safely('node', () => host.checkNode()),
    safely('addon', host.checkAddon),
    safely('docker', async () => host.checkDocker(await info)),
    safely('abra', host.checkAbra),
    safely('lock dir', host.checkLockDirSafe),
    safely('runs dir', host.checkRunsDirSafe),
    safely('settings', () => checkSettings(env)),
    safely('lock backend', async () => {
      let etcd: ReturnType<typeof settings.lockBackend.parse>;
      try {
        etcd = settings.lockBackend.parse(env);
      } catch (error) {
        return notChecked('lock backend', error);
      }
      return host.checkLockBackend(etcd, await info);
    }),
  ];
  if (env.CCCI_INGRESS) {
    rows.push(
      safely('ingress', async () => {
        let ingress: ReturnType<typeof settings.ingress.parse>;
        let base: string;
        try {
          ingress = settings.ingress.parse(env);
          base = (await import('../../lib/naming.js')).baseDomain();
        } catch (error) {
          return notChecked('ingress', error);
        }
        return host.checkIngressTls(ingress, base);
      }),
    );
  }
  if (env.CCCI_WARM_APPS) {
    rows.push(
      safely('warm apps', async () => {
        let domains: string[];
        let server: string;
        try {
          domains = settings.warmApps.parse(env);
          server = settings.server.parse(env);
        } catch (error) {
          return notChecked('warm apps', error);
        }
        return host.checkWarmApps(domains, server);
      }),
    );
  }
  if (env.DRONE_RUNNER_CAPACITY) {
    const capacity = host.parseCapacity(env.DRONE_RUNNER_CAPACITY);
    rows.push(
      typeof capacity === 'string'
        ? Promise.resolve([
            { name: 'capacity', status: 'fail', detail: capacity, fix: 'set it to the Drone runner capacity this host really has' },
          ])
        : safely('capacity', async () => host.checkCapacity(capacity, await info)),
    );
  }
  return (await Promise.all(rows)).flat();
}

/** The aligned table (a fix on its own line under its row), then the headline. */
export function formatChecks(checks: Check[]): string {
  const width = Math.max(...checks.map((check) => check.name.length));
  const lines: string[] = [];
  for (const { name, status, detail, fix } of checks) {
    lines.push(`${name.padEnd(width)}  ${status}  ${detail}`);
    if (fix !== undefined) lines.push(`${''.padEnd(width)}        fix: ${fix}`);
  }
  const count = (status: Check['status']): number => checks.filter((check) => check.status === status).length;
  lines.push('', `doctor: ${count('pass')} pass, ${count('warn')} warn, ${count('fail')} fail`);
  return lines.join('\n');
}
