// `cc-ci warm-reconcile`: keep warm/canonical apps at their recipe's latest version. Its
// dependencies (abra, the app lock, execa) are imported in main, so `--help` loads none of them.
import { parseArgs } from 'node:util';

import { CcciError, EXIT } from '../../lib/errors.js';
import { etcdEnvironment } from './output.js';

export const usage = `Usage: cc-ci warm-reconcile [--apps DOMAIN,...] [--dry-run] [--json]

Outside any run, with the canonical ~/.abra (ABRA_DIR is ignored): for each warm app, skip it if
a run holds its app lock, else take the lock, complete the rollback a dead quick run left if its
recovery record is there (docs/recipes.md#the-quick-lane), fetch its recipe and deploy the latest
published version if the app is behind.

Options:
  --apps DOMAIN,...  the warm apps, comma-separated (default: CCCI_WARM_APPS)
  --dry-run          say what would be upgraded, change nothing
  --json             print the report as JSON on stdout: {rolledBack: [], upgraded: [{domain,
                     from, to}], current: [], skipped: [{domain, reason}]}
  -h, --help         this help

Environment:
  ABRA_DIR                       ignored: unset at the start (default: unset)
  CCCI_APP_LOCK_DIR              the lock dir (default /run/lock)
  CCCI_CONVERGE_TIMEOUT_SECONDS  how long a pending rollback's services may take to converge
                                 (default 600)
  CCCI_HEALTH                    on or off: a pending rollback's HTTP health check (default on)
  CCCI_INGRESS                   host:port of the reverse proxy apps answer through
                                 (default 127.0.0.1:443)
  CCCI_INGRESS_CA                a PEM file of CAs trusted besides the system's, for the ingress
                                 (default: unset)
  CCCI_LEGACY_LOCK_DIR           the old shared lock dir during a move; each app is locked there
                                 too (default: unset)
  CCCI_RUNS_DIR                  where quick runs keep recovery records, in warm/
                                 (default /var/lib/cc-ci-runs)
  CCCI_SERVER                    the abra server (default default)
  CCCI_WARM_APPS                 the warm apps when --apps is not given, comma-separated domains
                                 (default: unset)
  DOCKER_HOST                    the Engine whose events the waits read: a unix:// socket, else
                                 they poll through docker (default /var/run/docker.sock)
  HOME                           the home of ~/.abra (default: the account's home dir)
${etcdEnvironment(33)}
  CCCI_BASE_DOMAIN               the base of run-app domains (default ci.commoninternet.net)
  CCCI_DEADLINE_SECONDS          a run's hard deadline, for the long-held flag (default 3600)

Exit codes: 0 done (skips are not failures), 1 an upgrade or a pending rollback failed, 2 bad input.`;

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { apps: { type: 'string' }, 'dry-run': { type: 'boolean' }, json: { type: 'boolean' } },
  });
  const [
    { abraClient, abraServer },
    { dockerClient },
    { createLog },
    { parseWarmApps, warmReconcile },
    { parseIngress },
    { convergeTimeoutMs },
  ] = await Promise.all([
    import('../host/abra.js'),
    import('../host/docker.js'),
    import('../host/log.js'),
    import('../warm.js'),
    import('../run/health.js'),
    import('../run/config.js'),
  ]);
  const domains = parseWarmApps(values.apps ?? process.env.CCCI_WARM_APPS, values.apps === undefined ? 'CCCI_WARM_APPS' : '--apps');
  delete process.env.ABRA_DIR; // outside any run: the canonical ~/.abra
  const log = values.json ? (line: string) => process.stderr.write(`${line}\n`) : createLog();
  const abra = abraClient({ server: abraServer(), log });
  const settings = { ingress: parseIngress(), convergeTimeoutMs: convergeTimeoutMs() };
  const { locking } = await import('../host/locking.js');
  const locks = await locking({ runId: `warm-reconcile-${process.pid}`, kind: 'run', log });
  const report = await warmReconcile({
    domains,
    abra,
    docker: dockerClient({ log }),
    log,
    dryRun: values['dry-run'] ?? false,
    ...settings,
  });
  await locks.releaseAll();
  if (values.json) console.log(JSON.stringify(report, null, 2));
  const failed = report.skipped.filter((s) => s.reason.startsWith('failed:')).map((s) => s.domain);
  if (failed.length > 0) throw new CcciError('ERR_CCCI_WARM_UPGRADE', `failed for ${failed.join(', ')} (see the lines above)`);
  return EXIT.ok;
}
