// What the janitor does NOT do: probe warm/canonical names (case 11), crash on a bad lockfile or a
// missing lock dir (case 12), or change anything in a dry run.
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { lockPath } from '../../lib/lockfiles.js';
import { probeLock } from '../../lib/lock.js';
import { liveRun, lockDirEntries, orphan, runApp, sweep } from '../support/janitor-fixtures.js';
import { useHelpers } from '../support/processes.js';

const { lockDir } = useHelpers();

describe('janitor: what it leaves alone', () => {
  it('never probes a warm/canonical name: no lockfile is even created for it (case 11)', async () => {
    const dir = lockDir();
    const notRunApps = [
      'warm-keycloak.ci.commoninternet.net',
      'keycloak.ci.commoninternet.net',
      'drone.ci.commoninternet.net',
      'ab12-a00011.ci.example.org',
      'AB12-A00011.ci.commoninternet.net',
      '../../etc/passwd',
      '',
    ];
    const { report, tornDown, lines } = await sweep(notRunApps);
    expect(tornDown).toEqual([]);
    expect(report).toEqual({ dryRun: false, reaped: [], live: [], longHeld: [], skipped: [], tidied: [] });
    expect(lockDirEntries(dir)).toEqual([]);
    expect(lines).toEqual([]);
  });

  it('skips a lockfile that is a directory, a FIFO or a symlink with a log line, and goes on (case 12)', async () => {
    const dir = lockDir();
    const [asDir, asFifo, asLink, fine] = [runApp('a0d1e0'), runApp('a0f1f0'), runApp('a0119c'), runApp('a00012')];
    mkdirSync(lockPath(asDir));
    execFileSync('mkfifo', [lockPath(asFifo)]);
    writeFileSync(join(dir, 'elsewhere'), '');
    symlinkSync(join(dir, 'elsewhere'), lockPath(asLink));
    await orphan(fine);

    const { report, tornDown, log } = await sweep([asDir, asFifo, asLink, fine]);
    expect(tornDown).toEqual([fine]);
    expect(report.reaped).toEqual([fine]);
    expect(report.skipped.map((s) => s.domain)).toEqual([asDir, asFifo, asLink]);
    expect(report.skipped[0]!.reason).toMatch(/EISDIR: lockfile is a directory/);
    expect(report.skipped[1]!.reason).toMatch(/EFTYPE: lockfile is not a regular file/);
    expect(report.skipped[2]!.reason).toMatch(/ELOOP/);
    expect(log()).toContain(
      `cannot probe lockfile ${lockPath(asDir)} (EISDIR: lockfile is a directory, open '${lockPath(asDir)}') — skipping ${asDir}`,
    );
    expect(statSync(lockPath(asDir)).isDirectory()).toBe(true);
  });

  it('skips every candidate with one log line when the lock dir is missing (case 12)', async () => {
    process.env.CCCI_APP_LOCK_DIR = join(lockDir(), 'gone');
    const domain = runApp('a0012b');
    const { report, tornDown, lines } = await sweep([domain]);
    expect(tornDown).toEqual([]);
    expect(report.skipped).toEqual([{ domain, reason: expect.stringMatching(/^lock dir .*\/gone cannot be used \(ENOENT/) }]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^!! janitor: lock dir .*gone.* nothing is reaped/);
  });

  it('changes nothing in a dry run, and says what a real sweep would do', async () => {
    const dir = lockDir();
    const [freeOrphan, noLockfile, live, stale] = [runApp('a0d201'), runApp('a0d202'), runApp('a0d203'), runApp('a0d204')];
    await orphan(freeOrphan);
    await liveRun(live);
    writeFileSync(lockPath(stale), '');
    const snapshot = (): string[] =>
      lockDirEntries(dir).map((name) => {
        const st = statSync(join(dir, name));
        return `${name} ${st.ino} ${st.mtimeMs} ${st.mode}`;
      });
    const before = snapshot();

    const { report, tornDown, log } = await sweep([freeOrphan, noLockfile, live], { dryRun: true });
    expect(tornDown).toEqual([]);
    expect(report).toEqual({ dryRun: true, reaped: [freeOrphan, noLockfile], live: [live], longHeld: [], skipped: [], tidied: [stale] });
    expect(snapshot()).toEqual(before);
    expect(probeLock(noLockfile)).toBe('absent');
    expect(probeLock(live)).toBe('held');
    expect(log()).toContain('[dry run]');
  });
});
