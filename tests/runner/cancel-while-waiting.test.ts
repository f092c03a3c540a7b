// A `cc-ci run` cancelled while it waits for its app lock must leave the holder's app alone: it
// tears down only an app whose lock it holds (runner/run.ts), and its wait leaves nothing behind.
// The built CLI on a fake host (tests/support/fake-host.ts), a real lock held by a real process.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { probeLock } from '../../lib/lock.js';
import { appDomain, stackName } from '../../lib/naming.js';
import { fakeHost } from '../support/fake-host.js';
import { liveRun } from '../support/janitor-fixtures.js';
import { waitersOf } from '../support/kernel-locks.js';
import { startCli, useHelpers } from '../support/processes.js';

useHelpers();

describe('cc-ci run and the app lock', () => {
  it("a run cancelled while it waits for the lock exits 143 and leaves the holder's app and lock alone", async () => {
    const host = fakeHost(['x']);
    process.env.CCCI_APP_LOCK_DIR = host.locks; // for the holder and for probeLock here
    const domain = appDomain('x', '0', '');
    // The holder: a live run of the same domain, with its app on the host.
    const holder = await liveRun(domain);
    const env = join(host.home, '.abra', 'servers', 'default', `${domain}.env`);
    writeFileSync(env, 'TYPE=x\n');
    host.apps({ default: { apps: [{ appName: domain, domain }] } });
    host.services([`${stackName(domain)}_app`]);

    const waiter = startCli(['run'], { env: { ...host.env, RECIPE: 'x', CCCI_RUN_ID: 'waiter', STAGES: 'install' } });
    await waiter.waitFor(`another run of ${domain} is in flight — waiting (held by pid ${holder.pid}`, 30_000);
    expect(waitersOf(waiter.pid)).toHaveLength(1); // blocked in the kernel, on the holder's lock
    waiter.child.kill('SIGTERM');

    expect(await waiter.exited, waiter.output()).toEqual({ code: 143, signal: null });
    expect(waiter.output()).toContain('== SIGTERM received — tearing down ==');
    // Nothing of the holder's app was touched: no teardown call of any kind, its .env is there.
    const mutations = host.calls().filter((call) => !/^(abra app ls|docker (service|volume|secret|network) ls)/.test(call));
    expect(mutations).toEqual([]);
    expect(existsSync(env)).toBe(true);
    expect(probeLock(domain)).toBe('held');
    const results = JSON.parse(readFileSync(join(host.runs, 'waiter', 'results.json'), 'utf8'));
    expect(results).toMatchObject({ exitCode: 143, teardown: 'skipped', deploys: 0 });
  });
});
