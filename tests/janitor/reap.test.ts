// The janitor's decision per candidate, against real locks held by real processes (Python suite
// cases 5, 6, 7, 9, 10, plus flock(1) interop and a throwing teardown).
import { existsSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { lockPath } from '../../lib/lockfiles.js';
import { probeLock } from '../../lib/lock.js';
import { liveRun, orphan, runApp, sweep } from '../support/janitor-fixtures.js';
import { eventually, startHelper, startProcess, useHelpers, type Helper } from '../support/processes.js';

const { lockDir } = useHelpers();

describe('janitor: orphans and live runs', () => {
  it('reaps an orphan exactly once and unlinks its lockfile (case 5)', async () => {
    lockDir();
    const domain = runApp('a00005');
    await orphan(domain);
    const { report, tornDown, log } = await sweep([domain, domain]);
    expect(tornDown).toEqual([domain]);
    expect(report.reaped).toEqual([domain]);
    expect(existsSync(lockPath(domain))).toBe(false);
    expect(log()).toContain(`${domain} — lock free: orphan, reaping`);
  });

  it('never reaps a live run, and logs it as live (case 6)', async () => {
    lockDir();
    const domain = runApp('a00006');
    await liveRun(domain);
    const { report, tornDown, log } = await sweep([domain]);
    expect(tornDown).toEqual([]);
    expect(report).toMatchObject({ reaped: [], live: [domain], longHeld: [], skipped: [] });
    expect(log()).toContain(`${domain} — lock held by a live run, leaving it`);
    expect(probeLock(domain)).toBe('held');
  });

  it('counts a flock(1) holder as a live run', async () => {
    lockDir();
    const domain = runApp('a0f10c');
    startProcess('flock', ['--exclusive', lockPath(domain), 'sleep', '300']);
    await eventually(() => probeLock(domain) === 'held', 10_000, 'flock(1) to take the lock');
    const { report, tornDown } = await sweep([domain]);
    expect(tornDown).toEqual([]);
    expect(report.live).toEqual([domain]);
    expect(probeLock(domain)).toBe('held');
  });

  it('reaps while holding the lock: a new run of the domain waits for the reap to end, then holds a lock the next probe sees (case 7)', async () => {
    lockDir();
    const domain = runApp('a00007');
    await orphan(domain);
    let newRun: Helper | undefined;
    let reapEndedAt = 0;
    const { report } = await sweep([domain], {
      teardown: async () => {
        newRun = startHelper('hold-lock.mjs', [domain]);
        // It logs this only once it has waited past the grace: it is blocked on our probe lock.
        await newRun.waitFor('another run of');
        reapEndedAt = Date.now();
      },
    });
    expect(report.reaped).toEqual([domain]);
    const held = await newRun!.waitFor('HELD');
    const acquiredAt = Number(/ at=(\d+)/.exec(held)![1]);
    expect(acquiredAt).toBeGreaterThanOrEqual(reapEndedAt);
    expect(probeLock(domain)).toBe('held');
  });

  it('reaps an app whose lockfile is gone (host rebooted) at once, holding a fresh lock meanwhile (case 9)', async () => {
    lockDir();
    const domain = runApp('a00009');
    expect(probeLock(domain)).toBe('absent');
    const stateDuringTeardown: string[] = [];
    const started = Date.now();
    const { report, tornDown } = await sweep([domain], { teardown: () => void stateDuringTeardown.push(probeLock(domain)) });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(tornDown).toEqual([domain]);
    expect(stateDuringTeardown).toEqual(['held']);
    expect(report.reaped).toEqual([domain]);
    expect(probeLock(domain)).toBe('absent');
  });

  it('leaves a run whose lockfile was deleted under it alone: it still holds the lock', async () => {
    lockDir();
    const domain = runApp('a0de1e');
    const run = startHelper('hold-and-unlink.mjs', [domain]);
    await run.waitFor('HELD');
    run.child.kill('SIGUSR2');
    await run.waitFor('UNLINKED');
    const { report, tornDown, log } = await sweep([domain]);
    expect(tornDown).toEqual([]);
    expect(report.live).toEqual([domain]);
    expect(log()).toContain('still holds the lock');
    expect(probeLock(domain)).toBe('absent'); // and no lockfile was made for it
  });

  it('flags a lock held past twice the hard deadline with its holder, and never steals it (case 10)', async () => {
    lockDir();
    const domain = runApp('a00010');
    const run = await liveRun(domain);
    const backdated = (Date.now() - 130 * 60_000) / 1000;
    utimesSync(lockPath(domain), backdated, backdated);

    const { report, tornDown, log } = await sweep([domain]);
    expect(tornDown).toEqual([]);
    expect(report.live).toEqual([domain]);
    expect(report.longHeld).toHaveLength(1);
    const [flagged] = report.longHeld;
    expect(flagged).toMatchObject({ domain, pid: run.pid });
    expect(flagged!.command).toContain('hold-lock.mjs');
    expect(flagged!.heldForMs).toBeGreaterThan(120 * 60_000);
    expect(log()).toMatch(new RegExp(`^!! .*${domain}.*130 min.*pid ${run.pid}.*possible leaked run.*lslocks`, 'm'));
    expect(probeLock(domain)).toBe('held');

    // The threshold follows the deadline in force: argument, then CCCI_DEADLINE_SECONDS.
    expect((await sweep([domain], { deadlineSeconds: 4 * 3600 })).report.longHeld).toEqual([]);
    process.env.CCCI_DEADLINE_SECONDS = String(4 * 3600);
    try {
      expect((await sweep([domain])).report.longHeld).toEqual([]);
      expect((await sweep([domain], { deadlineSeconds: 3600 })).report.longHeld).toHaveLength(1);
      process.env.CCCI_DEADLINE_SECONDS = '2h';
      await expect(sweep([domain])).rejects.toThrow(/^CCCI_DEADLINE_SECONDS must be a whole number of seconds/);
    } finally {
      delete process.env.CCCI_DEADLINE_SECONDS;
    }
  });

  it('goes on after a teardown that throws or rejects, and still unlinks its lockfile', async () => {
    lockDir();
    const [throws, rejects, fine] = [runApp('a0bad1'), runApp('a0bad2'), runApp('a00f1e')];
    for (const domain of [throws, rejects, fine]) await orphan(domain);
    const { report, tornDown, log } = await sweep([throws, rejects, fine], {
      teardown: (domain) => {
        if (domain === throws) throw new Error('abra exploded');
        if (domain === rejects) return Promise.reject(new Error('docker went away'));
      },
    });
    expect(tornDown).toEqual([throws, rejects, fine]);
    expect(report.reaped).toEqual([fine]);
    expect(report.skipped).toEqual([
      { domain: throws, reason: 'teardown failed: abra exploded' },
      { domain: rejects, reason: 'teardown failed: docker went away' },
    ]);
    for (const domain of [throws, rejects, fine]) expect(existsSync(lockPath(domain))).toBe(false);
    expect(log()).toContain(`teardown of ${throws} failed: abra exploded`);
  });

  it('does not unlink a lockfile replaced by hand during a long reap: a new run now holds it', async () => {
    lockDir();
    const domain = runApp('a0e91a');
    await orphan(domain);
    const { report, log } = await sweep([domain], {
      teardown: async () => {
        unlinkSync(lockPath(domain)); // someone "cleaning up" /run/lock mid-reap…
        await liveRun(domain); // …and a new run of the domain takes a fresh lockfile
      },
    });
    expect(report.reaped).toEqual([domain]);
    expect(log()).toContain('was replaced during the reap');
    expect(probeLock(domain)).toBe('held');
  });

  it('tidies unheld lockfiles no app stands behind, and leaves held ones', async () => {
    const dir = lockDir();
    const [stale, heldNoApp, candidate] = [runApp('a57a1e'), runApp('a0be1d'), runApp('a0ca4d')];
    for (const path of [lockPath(stale), `${dir}/cc-ci-app-warm-keycloak.ci.commoninternet.net.lock`, `${dir}/unrelated.txt`])
      writeFileSync(path, '');
    await liveRun(heldNoApp);
    await liveRun(candidate);
    const { report } = await sweep([candidate]);
    expect(report.tidied).toEqual([stale, 'warm-keycloak.ci.commoninternet.net']);
    expect(report.live).toEqual([candidate]);
    expect(existsSync(lockPath(stale))).toBe(false);
    expect(existsSync(`${dir}/unrelated.txt`)).toBe(true);
    expect(probeLock(heldNoApp)).toBe('held');
  });
});
