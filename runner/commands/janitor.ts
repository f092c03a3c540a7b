// `cc-ci janitor [--dry-run] [--json]`: one sweep of the flock-probe janitor over this host's apps.
// Its dependencies (the addon, execa) are imported in main, so `--help` loads none of them.
import { parseArgs } from 'node:util';

import type { JanitorReport } from '../../lib/janitor.js';
import { etcdEnvironment } from './output.js';

export const usage = `Usage: cc-ci janitor [--dry-run] [--json]

Probes the app lock of every run app (abra app ls + docker service ls, run-app names only):
  free  -> the run died: tear the app down while holding its lock, unlink the lockfile
  held  -> a live run: leave it (flagged if held over twice the hard deadline)
then unlinks unheld app lockfiles that no app stands behind.

Options:
  --dry-run   probe and report only: no teardown, no unlink, no lockfile created
  --json      print the report as JSON on stdout (decision lines still go to stderr)
  -h, --help  this help

Environment:
  ABRA_DIR               abra's state dir, where the apps' .env files are (default ~/.abra)
  CCCI_APP_LOCK_DIR      the lock dir (default /run/lock)
  CCCI_BASE_DOMAIN       the domain run apps live under (default ci.commoninternet.net)
  CCCI_DEADLINE_SECONDS  a run's hard deadline, for the long-held flag (default 3600)
  CCCI_LEGACY_LOCK_DIR   the old shared lock dir during a move; a lock held there is a live run
                         too (default: unset)
  CCCI_SERVER            the abra server (default default)
  DOCKER_HOST            the Engine whose events a teardown waits on: a unix:// socket, else it
                         polls through docker (default /var/run/docker.sock)
  HOME                   the home of ~/.abra (default: the account's home dir)
${etcdEnvironment(25)}

Exit codes: 0 swept (see the report for skips), 1 discovery failed, 2 bad input.`;

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { 'dry-run': { type: 'boolean' }, json: { type: 'boolean' } },
    strict: true,
    allowPositionals: false,
  });
  const [{ locking }, { lockDir }, { abraServer }, { defaultJanitorHooks }] = await Promise.all([
    import('../host/locking.js'),
    import('../../lib/lockfiles.js'),
    import('../host/abra.js'),
    import('../host/discovery.js'),
  ]);
  abraServer(); // a bad CCCI_SERVER is refused before anything is probed, not at each teardown
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  const locks = await locking({ runId: `janitor-${process.pid}`, kind: 'janitor', log });
  const report = await locks.janitor({ ...defaultJanitorHooks({ log }), log, dryRun: values['dry-run'] === true });
  await locks.releaseAll();
  console.log(values.json ? JSON.stringify(report, null, 2) : formatReport(report, lockDir()));
  return 0;
}

/** The human summary: one headline, then one line per domain acted on or worth a look. */
export function formatReport(report: JanitorReport, dir: string): string {
  const count = (n: number, what: string): string => `${n} ${what}`;
  const head =
    `janitor${report.dryRun ? ' (dry run: nothing changed)' : ''}: ` +
    [
      count(report.reaped.length, report.dryRun ? 'to reap' : 'reaped'),
      count(report.live.length, 'live') + (report.longHeld.length ? ` (${report.longHeld.length} long-held)` : ''),
      count(report.skipped.length, 'skipped'),
      count(report.tidied.length, report.dryRun ? 'to tidy' : 'tidied'),
    ].join(', ') +
    ` — lock dir ${dir}`;
  const longHeld = new Map(report.longHeld.map((entry) => [entry.domain, entry]));
  const rows: [string, string, string][] = [];
  for (const domain of report.reaped) rows.push([report.dryRun ? 'would reap' : 'reaped', domain, '']);
  for (const domain of report.live) {
    const flagged = longHeld.get(domain);
    const note = flagged
      ? `LONG-HELD ${Math.floor(flagged.heldForMs / 60_000)} min by ${flagged.pid === null ? 'unknown pid' : `pid ${flagged.pid}`}` +
        `${flagged.command ? ` (${flagged.command})` : ''} — possible leaked run, inspect with lslocks`
      : '';
    rows.push(['live', domain, note]);
  }
  for (const { domain, reason } of report.skipped) rows.push(['skipped', domain, reason]);
  for (const domain of report.tidied) rows.push([report.dryRun ? 'would tidy' : 'tidied', domain, 'stale lockfile']);
  const width = Math.max(0, ...rows.map(([, domain]) => domain.length));
  return [head, ...rows.map(([what, domain, note]) => `  ${what.padEnd(10)} ${domain.padEnd(width)}  ${note}`.trimEnd())].join('\n');
}
