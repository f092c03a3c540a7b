// The private lock dir (production: /run/lock/cc-ci) and the move to it from the shared /run/lock:
// created 0755 whatever the umask, refused when others could swap lockfiles in it, and, while
// CCCI_LEGACY_LOCK_DIR names the old dir, runs hold their lock there too and the janitor honours
// locks held there by runners that only know the old path.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { janitor } from '../../lib/janitor.js';
import { acquireAppLock } from '../../lib/lock.js';
import { ensureLockDir } from '../../lib/lockfiles.js';
import { HELPERS, startHelper, startProcess, tempDir, useHelpers } from '../support/processes.js';

const { lockDir } = useHelpers();
afterEach(() => {
  delete process.env.CCCI_LEGACY_LOCK_DIR;
});

function heldFromOutside(path: string): boolean {
  try {
    execFileSync('flock', ['-n', path, 'true']);
    return false;
  } catch {
    return true;
  }
}

describe('private lock dir', () => {
  it('is created 0755 under a restrictive umask, and the lock taken in it', async () => {
    const parent = lockDir();
    const dir = join(parent, 'cc-ci');
    const holder = startProcess(
      'sh',
      ['-c', `umask 077 && exec "$0" "$1" priv-a1b2c3.ci.example`, process.execPath, join(HELPERS, 'hold-lock.mjs')],
      {
        env: { CCCI_APP_LOCK_DIR: dir },
      },
    );
    await holder.waitFor('HELD');
    expect(statSync(dir).mode & 0o7777).toBe(0o755);
    expect(heldFromOutside(join(dir, 'cc-ci-app-priv-a1b2c3.ci.example.lock'))).toBe(true);
  });

  it('is refused when others may write to it without the sticky bit, or when it is not a directory', () => {
    const parent = lockDir();
    const open = join(parent, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    process.env.CCCI_APP_LOCK_DIR = open;
    expect(() => ensureLockDir()).toThrow(/is writable by others without the sticky bit \(mode 777\)/);
    chmodSync(open, 0o1777); // like /run/lock itself: sticky, so nobody can replace our lockfiles
    expect(ensureLockDir()).toBe(open);
    const file = join(parent, 'file');
    writeFileSync(file, '');
    process.env.CCCI_APP_LOCK_DIR = file;
    expect(() => ensureLockDir()).toThrow(/is not a directory/);
  });
});

describe('moving from the shared lock dir (CCCI_LEGACY_LOCK_DIR)', () => {
  it('makes a run hold its lock in the old dir too, so an old runner or janitor sees it live', async () => {
    const legacy = lockDir();
    const dir = join(tempDir('ccci-private-'), 'cc-ci');
    const holder = startHelper('hold-lock.mjs', ['move-a1b2c3.ci.example'], {
      env: { CCCI_APP_LOCK_DIR: dir, CCCI_LEGACY_LOCK_DIR: legacy },
    });
    await holder.waitFor('HELD');
    expect(heldFromOutside(join(legacy, 'cc-ci-app-move-a1b2c3.ci.example.lock'))).toBe(true);
    expect(heldFromOutside(join(dir, 'cc-ci-app-move-a1b2c3.ci.example.lock'))).toBe(true);
  });

  it('makes a run wait for an old runner holding the old path, and the janitor leave that app alone', async () => {
    const legacy = lockDir();
    const domain = 'olds-a1b2c3.ci.commoninternet.net';
    const old = startProcess('flock', ['-o', join(legacy, `cc-ci-app-${domain}.lock`), 'sleep', '60']);
    await new Promise((r) => setTimeout(r, 200));
    expect(heldFromOutside(join(legacy, `cc-ci-app-${domain}.lock`))).toBe(true);

    process.env.CCCI_APP_LOCK_DIR = join(tempDir('ccci-private-'), 'cc-ci');
    process.env.CCCI_LEGACY_LOCK_DIR = legacy;
    ensureLockDir();
    const torn: string[] = [];
    const report = await janitor({ discover: () => [domain], teardown: (d) => void torn.push(d), log: () => {} });
    expect(torn).toEqual([]);
    expect(report.live).toEqual([domain]);

    await expect(acquireAppLock(domain, { signal: AbortSignal.timeout(300), log: () => {} })).rejects.toThrow();
    old.child.kill('SIGKILL');
    await old.exited;
    await expect(acquireAppLock(domain, { log: () => {} })).resolves.toMatchObject({ domain });
  });
});
