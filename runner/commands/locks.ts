// `cc-ci locks [--json]`: every app lockfile, whether a run holds it, for how long, and who.
// Its dependencies (lib/lockfiles.js and the addon behind it) are imported in main, so `--help`
// loads none of them. node:fs comes from process.getBuiltinModule: an ESM import of it builds a
// facade that loads node:stream (see runner/cli.ts).
import { parseArgs } from 'node:util';

import { InputError } from '../../lib/errors.js';
import type { AppLockInfo } from '../../lib/lockfiles.js';
import { etcdEnvironment, print } from './output.js';

const { existsSync } = process.getBuiltinModule('node:fs');

export const usage = `Usage: cc-ci locks [--json]

Lists every cc-ci-app-*.lock in the lock dir, sorted by domain. A held lock means its run is alive;
age is the time since the run took it. Probing takes a shared non-blocking lock for an instant and
never disturbs a run.

Options:
  --json      print [{ domain, path, state: "held"|"free", ageMs, holder: {pid, command}|null }]
  -h, --help  this help

Environment:
  CCCI_APP_LOCK_DIR     the lock dir (default /run/lock)
  CCCI_LEGACY_LOCK_DIR  the old shared lock dir during a move, named in errors; its lockfiles are
                        not listed (default: unset)
${etcdEnvironment(24)}
  DOCKER_HOST           docker, for the swarm id in etcd keys (default /var/run/docker.sock)

Exit codes: 0 listed, 2 bad input (an unknown option, a lock dir that cannot be read).`;

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean' } }, strict: true, allowPositionals: false });
  // Read only when set: the flock path's start-up stays as it was (`npm run bench cli`).
  if (process.env.CCCI_LOCK_BACKEND && (await import('../../lib/lock-backend.js')).lockBackendName() === 'etcd') {
    return etcdLocks(values.json === true);
  }
  const { inspectAppLocks, lockDir } = await import('../../lib/lockfiles.js');
  const dir = lockDir();
  let locks: AppLockInfo[];
  try {
    locks = inspectAppLocks((path, why) => console.error(`cc-ci locks: skipping ${path}: ${why}`));
  } catch (error) {
    // A lock dir we cannot list is a setting to fix, not a crash to debug.
    throw new InputError(`lock dir ${dir} cannot be read (${(error as Error).message}) (CCCI_APP_LOCK_DIR)`, {
      code: 'ERR_CCCI_LOCK_DIR',
      path: dir,
    });
  }
  // print, not console.log: no stdout stream to set up (runner/commands/output.ts)
  if (values.json) print(1, JSON.stringify(locks, null, 2));
  else if (locks.length === 0 && !existsSync(dir)) print(1, `no app lockfiles: lock dir ${dir} does not exist (CCCI_APP_LOCK_DIR)`);
  else print(1, formatLocks(locks, dir));
  return 0;
}

/** The etcd backend's locks of this swarm: every key held, by whom, since when, at which generation. */
async function etcdLocks(json: boolean): Promise<number> {
  const [{ etcdSettings }, { listEtcdLocks }, { swarmClusterId }] = await Promise.all([
    import('../../lib/lock-backend.js'),
    import('../../lib/etcd-lock.js'),
    import('../host/engine.js'),
  ]);
  const settings = etcdSettings();
  const locks = await listEtcdLocks(settings, await swarmClusterId());
  if (json) {
    print(1, JSON.stringify(locks, null, 2));
    return 0;
  }
  const rows = [
    ['DOMAIN', 'AGE', 'GENERATION', 'HOLDER'],
    ...locks.map(({ domain, holder, generation }) => [
      domain,
      holder ? formatAge(Date.now() - Date.parse(holder.acquiredAt)) : '?',
      generation,
      holder ? `${holder.kind} ${holder.runId} on ${holder.host}, pid ${holder.pid}` : '?',
    ]),
  ];
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((row) => row[i]!.length)));
  const lines = rows.map((row) => row.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]!) : cell)).join('  '));
  print(1, [...lines, '', `${locks.length} held on etcd (${settings.endpoints.join(',')})`].join('\n'));
  return 0;
}

/** `1h02m`, `3m07s`, `12s`: short enough for a table column. */
export function formatAge(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

export function formatLocks(locks: AppLockInfo[], dir: string): string {
  if (locks.length === 0) return `no app lockfiles in ${dir}`;
  const rows = [
    ['DOMAIN', 'STATE', 'AGE', 'PID', 'COMMAND'],
    ...locks.map((lock) => [
      lock.domain,
      lock.state,
      formatAge(lock.ageMs),
      lock.holder ? String(lock.holder.pid) : '-',
      lock.holder ? (lock.holder.command ?? '?') : '-',
    ]),
  ];
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((row) => row[i]!.length)));
  const held = locks.filter((lock) => lock.state === 'held').length;
  return [
    ...rows.map((row) =>
      row
        .map((cell, i) => (i < 4 ? cell.padEnd(widths[i]!) : cell))
        .join('  ')
        .trimEnd(),
    ),
    '',
    `${locks.length} lockfile${locks.length === 1 ? '' : 's'} in ${dir}: ${held} held, ${locks.length - held} free`,
  ].join('\n');
}
