// Two janitors at once reap an orphan exactly once (Python suite case 8): as two processes, and
// as two concurrent calls in one process. The reaper's teardown is held open until the other
// janitor has finished, so the sweeps overlap for certain, with no sleeps.
import { existsSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import { describe, expect, it } from 'vitest';

import type { JanitorReport } from '../../lib/janitor.js';
import { lockPath } from '../../lib/lockfiles.js';
import { lockDirEntries, orphan, runApp, sweep } from '../support/janitor-fixtures.js';
import { startHelper, useHelpers, type Helper } from '../support/processes.js';

const { lockDir } = useHelpers();

const reportOf = async (janitor: Helper): Promise<JanitorReport> =>
  JSON.parse((await janitor.waitFor(/^REPORT /)).slice('REPORT '.length)) as JanitorReport;

describe('two janitors at once', () => {
  it('as two processes: exactly one reaps, the other sees the lock held', async () => {
    lockDir();
    const domain = runApp('a00008');
    await orphan(domain);
    const janitors = [startHelper('janitor-sweep.mjs', [domain]), startHelper('janitor-sweep.mjs', [domain])];
    await Promise.all(janitors.map((j) => j.waitFor('READY')));
    for (const j of janitors) j.child.kill('SIGUSR1');

    // The one that does not reap finishes while the reaper's teardown is still held open. If
    // both reaped (no arbitration), neither would finish: give up waiting and let both go.
    const first = await Promise.race([...janitors.map((j) => j.waitFor(/^REPORT /).then(() => j)), sleep(5_000, null)]);
    for (const j of janitors) j.child.kill('SIGUSR2');
    const reports = await Promise.all(janitors.map(reportOf));

    const teardowns = janitors.flatMap((j) => j.lines.filter((line) => line === `TEARDOWN ${domain}`));
    expect(teardowns).toHaveLength(1);
    expect(first).not.toBeNull();
    const reaper = reports.find((r) => r.reaped.length > 0)!;
    const other = reports.find((r) => r !== reaper)!;
    expect(reaper.reaped).toEqual([domain]);
    expect(other).toMatchObject({ reaped: [], live: [domain] });
    expect(existsSync(lockPath(domain))).toBe(false);
  });

  it('as two concurrent calls in one process: exactly one reaps, the other is told why', async () => {
    lockDir();
    const domain = runApp('a0008b');
    await orphan(domain);
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const teardown = (): Promise<void> => released;
    const sweeps = [sweep([domain], { teardown }), sweep([domain], { teardown })];

    await Promise.race([...sweeps, sleep(5_000)]);
    release();
    const results = await Promise.all(sweeps);

    expect(results.flatMap((r) => r.tornDown)).toEqual([domain]);
    const reaper = results.find((r) => r.report.reaped.length > 0)!;
    const other = results.find((r) => r !== reaper)!;
    expect(reaper.report.reaped).toEqual([domain]);
    expect(other.report).toMatchObject({
      reaped: [],
      live: [],
      skipped: [{ domain, reason: 'being reaped by another janitor call in this process' }],
    });
    expect(existsSync(lockPath(domain))).toBe(false);
  });

  it('racing flat out over many orphans, two processes still reap each exactly once', async () => {
    lockDir();
    const domains = Array.from({ length: 300 }, (_, i) => runApp(`b${i.toString(16).padStart(5, '0')}`));
    for (const domain of domains) writeFileSync(lockPath(domain), ''); // orphans: lockfile, no holder
    const janitors = [0, 1].map(() => startHelper('janitor-sweep.mjs', ['--instant', ...domains]));
    await Promise.all(janitors.map((j) => j.waitFor('READY')));
    for (const j of janitors) j.child.kill('SIGUSR1');
    const reports = await Promise.all(janitors.map(reportOf));

    const reaped = reports.flatMap((r) => r.reaped);
    expect(reaped.length, `reaped twice: ${reaped.filter((d, i) => reaped.indexOf(d) !== i).join(' ')}`).toBe(domains.length);
    expect(new Set(reaped).size).toBe(domains.length);
    expect(janitors.flatMap((j) => j.lines.filter((line) => line.startsWith('TEARDOWN ')))).toHaveLength(domains.length);
    expect(lockDirEntries(lockDir())).toEqual([]);
  });
});
