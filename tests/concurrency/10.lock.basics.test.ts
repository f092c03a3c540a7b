import { describe, expect, it } from 'vitest';

import { acquireAppLock, lockPath, probeLock } from '../../lib/lock.js';
import { startHelper, useHelpers } from '../support/processes.js';

const { lockDir } = useHelpers();

describe('app lock', () => {
  it('is released by the kernel when its holder is SIGKILLed', async () => {
    lockDir();
    const holder = startHelper('hold-lock.mjs', ['kill-a1b2c3.ci.example']);
    await holder.waitFor('HELD');
    expect(probeLock('kill-a1b2c3.ci.example')).toBe('held');
    holder.child.kill('SIGKILL');
    await holder.exited;
    expect(probeLock('kill-a1b2c3.ci.example')).toBe('free');
  });

  it('names the lockfile after the domain in the lock dir', () => {
    const dir = lockDir();
    expect(lockPath('ab-123456.ci.example')).toBe(`${dir}/cc-ci-app-ab-123456.ci.example.lock`);
  });

  it('waits for a holder and logs once', async () => {
    lockDir();
    const holder = startHelper('hold-lock.mjs', ['wait-a1b2c3.ci.example', '--exit-after', '600']);
    await holder.waitFor('HELD');
    const lines: string[] = [];
    const t0 = Date.now();
    await acquireAppLock('wait-a1b2c3.ci.example', { log: (l) => lines.push(l) });
    expect(Date.now() - t0).toBeGreaterThan(300);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`held by pid ${holder.pid}`);
  });
});
