// A lockfile is a regular file we own, created 0644, opened without following a symlink and
// without blocking. Anything else at its path is refused with an error naming it, at once.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, mkdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { acquireAppLock, probeLock } from '../../lib/lock.js';
import { lockPath } from '../../lib/lockfiles.js';
import { openLockFile } from '../../lib/native.js';
import { timed } from '../support/kernel-locks.js';
import { useHelpers } from '../support/processes.js';

const { lockDir } = useHelpers();
const DOMAIN = 'bad-a1b2c3.ci.example';

const plants: [string, (path: string) => void, object][] = [
  ['a directory', (path) => mkdirSync(path), { code: 'EISDIR', message: /lockfile is a directory/ }],
  ['a FIFO', (path) => execFileSync('mkfifo', [path]), { code: 'EFTYPE', message: /lockfile is not a regular file/ }],
  ['a symlink', (path) => symlinkSync('/etc/hostname', path), { code: 'ELOOP', message: /lockfile is a symbolic link/ }],
  [
    'a symlink to a real lockfile',
    (path) => {
      writeFileSync(`${path}.real`, '');
      symlinkSync(`${path}.real`, path);
    },
    { code: 'ELOOP' },
  ],
];

describe.each(plants)('a lockfile that is %s', (_what, plant, expected) => {
  it('makes probeLock and acquireAppLock throw a clear error naming it, without blocking', async () => {
    lockDir();
    const path = lockPath(DOMAIN);
    plant(path);
    const { code, message } = expected as { code: string; message?: RegExp };
    let error: NodeJS.ErrnoException | undefined;
    try {
      probeLock(DOMAIN);
    } catch (e) {
      error = e as NodeJS.ErrnoException;
    }
    expect(error).toMatchObject({ code, path });
    expect(error!.message).toContain(path);
    if (message) expect(error!.message).toMatch(message);

    const attempt = await timed(acquireAppLock(DOMAIN, { log: () => {} }));
    expect(attempt.error).toMatchObject({ code, path });
    expect(attempt.ms).toBeLessThan(1000); // a FIFO must not hang the open
  });
});

describe('lockfile creation and ownership', () => {
  it('creates new lockfiles 0644 whatever the umask', async () => {
    lockDir();
    const old = process.umask(0o077);
    try {
      const lock = await acquireAppLock(DOMAIN);
      expect(statSync(lock.path).mode & 0o7777).toBe(0o644);
      closeSync(openLockFile(lockPath('other-a1b2c3.ci.example'), true));
      expect(statSync(lockPath('other-a1b2c3.ci.example')).mode & 0o7777).toBe(0o644);
    } finally {
      process.umask(old);
    }
  });

  it('leaves an existing lockfile’s mode alone', async () => {
    lockDir();
    const path = lockPath(DOMAIN);
    writeFileSync(path, '');
    chmodSync(path, 0o600);
    await acquireAppLock(DOMAIN);
    expect(statSync(path).mode & 0o7777).toBe(0o600);
  });

  it.skipIf(process.geteuid?.() !== 0)('refuses a lockfile owned by another user', async () => {
    lockDir();
    const path = lockPath(DOMAIN);
    writeFileSync(path, '');
    chownSync(path, 65534, 65534);
    expect(() => probeLock(DOMAIN)).toThrow(
      expect.objectContaining({ code: 'EPERM', path, message: expect.stringMatching(/owned by uid 65534/) }),
    );
    await expect(acquireAppLock(DOMAIN)).rejects.toMatchObject({ code: 'EPERM' });
  });

  it('probes a missing lock dir as absent, and says so when even its parent is missing', async () => {
    const dir = lockDir();
    rmSync(dir, { recursive: true });
    expect(probeLock(DOMAIN)).toBe('absent');
    process.env.CCCI_APP_LOCK_DIR = `${dir}/nested/cc-ci`;
    await expect(acquireAppLock(DOMAIN)).rejects.toMatchObject({
      code: 'ERR_CCCI_LOCK_DIR',
      message: expect.stringContaining(`lock dir ${dir}/nested/cc-ci does not exist and its parent is missing too`),
    });
  });

  it('refuses a domain that could escape the lock dir before touching the filesystem', async () => {
    lockDir();
    for (const domain of ['../etc', 'a/b', 'UPPER.example', '', 'x'.repeat(254)]) {
      expect(() => lockPath(domain)).toThrow(expect.objectContaining({ code: 'ERR_CCCI_INPUT' }));
      expect(() => probeLock(domain)).toThrow(expect.objectContaining({ code: 'ERR_CCCI_INPUT' }));
      await expect(acquireAppLock(domain)).rejects.toMatchObject({ code: 'ERR_CCCI_INPUT' });
    }
  });
});
