// The janitor's three hot-path calls: probeLockFile (open + flock + one fstat), dropLockFile
// (unlink, then close) and readdirMatching (one getdents pass). Locks are held by real processes
// (flock(1), the library in a helper); what is held, closed or unlinked is read from the kernel.
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import {
  LOCK_EX,
  LOCK_NB,
  LOCK_SH,
  LOCK_UN,
  PROBE_ABSENT,
  PROBE_BUSY,
  PROBE_FREE,
  PROBE_REPLACED,
  dropLockFile,
  openLockFile,
  probeLockFile,
  probeLockState,
  readdirMatching,
} from '../../lib/native.js';
import { thrown } from '../support/errors.js';
import { fdLock, flockCanTake, heldElsewhere } from '../support/kernel-locks.js';
import { startHelper, startProcess, tempDir, useHelpers } from '../support/processes.js';

const { lockDir } = useHelpers();

const EX = LOCK_EX | LOCK_NB;
const SH = LOCK_SH | LOCK_NB;

function openFds(): string[] {
  return readdirSync('/proc/self/fd');
}

describe('probeLockState', () => {
  it('says free, busy or absent, keeps no fd, and never blocks a shared holder', async () => {
    const path = join(tempDir(), 'state.lock');
    const { path: held } = await heldElsewhere();
    const before = openFds();
    expect(probeLockState(path)).toBe(PROBE_ABSENT);
    expect(existsSync(path)).toBe(false);
    writeFileSync(path, '');
    utimesSync(path, 1_700_000_000, 1_700_000_000.5);
    const mtime = new Float64Array(1);
    expect(probeLockState(path, mtime)).toBe(PROBE_FREE);
    expect(mtime[0]).toBe(1_700_000_000_500);
    expect(flockCanTake(path)).toBe(true);
    expect(probeLockState(held)).toBe(PROBE_BUSY);
    expect(openFds()).toEqual(before);
    const reader = startProcess('flock', ['-s', '-o', path, 'sh', '-c', 'echo HELD; exec sleep 300']);
    await reader.waitFor('HELD');
    expect(probeLockState(path)).toBe(PROBE_FREE); // a shared holder is not a run
  });

  it('refuses what openLockFile refuses: a directory, a symlink', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'dir.lock'));
    expect(thrown(() => probeLockState(join(dir, 'dir.lock')))).toMatchObject({ code: 'EISDIR' });
    symlinkSync(join(dir, 'dir.lock'), join(dir, 'link.lock'));
    expect(thrown(() => probeLockState(join(dir, 'link.lock')))).toMatchObject({ code: 'ELOOP' });
  });
});

describe('probeLockFile', () => {
  it('hands back an fd holding the lock on a free lockfile, with its mtime', () => {
    const path = join(tempDir(), 'free.lock');
    writeFileSync(path, '');
    utimesSync(path, 1_700_000_000, 1_700_000_000.25);
    const mtime = new Float64Array(1);
    const fd = probeLockFile(path, EX, false, mtime);
    expect(fd).toBeGreaterThanOrEqual(0);
    expect(fdLock(fd)).toBe('WRITE');
    expect(flockCanTake(path)).toBe(false);
    expect(mtime[0]).toBe(1_700_000_000_250);
    closeSync(fd);
    expect(flockCanTake(path)).toBe(true);
  });

  it('answers PROBE_BUSY for a lock another process holds, and leaves no fd open', async () => {
    const { path } = await heldElsewhere();
    const mtime = new Float64Array(1);
    const before = openFds();
    expect(probeLockFile(path, EX, false, mtime)).toBe(PROBE_BUSY);
    expect(probeLockFile(path, SH, false)).toBe(PROBE_BUSY);
    expect(openFds()).toEqual(before);
    expect(mtime[0]).toBe(statSync(path).mtimeMs);
  });

  it('a shared probe shares with a shared holder and is refused by an exclusive one', async () => {
    const path = join(tempDir(), 'shared.lock');
    writeFileSync(path, '');
    const reader = startProcess('flock', ['-s', '-o', path, 'sh', '-c', 'echo HELD; exec sleep 300']);
    await reader.waitFor('HELD');
    const fd = probeLockFile(path, SH, false);
    expect(fd).toBeGreaterThanOrEqual(0);
    expect(fdLock(fd)).toBe('READ');
    closeSync(fd);
    expect(probeLockFile(path, EX, false)).toBe(PROBE_BUSY);
  });

  it('sees a run’s lock taken through the library as busy', async () => {
    const domain = 'prb-a1b2c3.ci.example';
    const path = join(lockDir(), `cc-ci-app-${domain}.lock`); // exported before the helper starts
    const holder = startHelper('hold-lock.mjs', [domain]);
    await holder.waitFor('HELD');
    expect(probeLockFile(path, EX, false)).toBe(PROBE_BUSY);
  });

  it('creates a missing lockfile 0644 only when asked to', () => {
    const path = join(tempDir(), 'new.lock');
    expect(thrown(() => probeLockFile(path, EX, false))).toMatchObject({ code: 'ENOENT', syscall: 'open', path });
    expect(existsSync(path)).toBe(false);
    const fd = probeLockFile(path, EX, true);
    expect(fd).toBeGreaterThanOrEqual(0);
    expect(statSync(path).mode & 0o777).toBe(0o644);
    closeSync(fd);
  });

  it('compares a lockfile with several links against the path, and still hands it back', () => {
    const dir = tempDir();
    const path = join(dir, 'linked.lock');
    writeFileSync(path, '');
    linkSync(path, join(dir, 'other-name'));
    const fd = probeLockFile(path, EX, false);
    expect(fd).toBeGreaterThanOrEqual(0);
    closeSync(fd);
  });

  it('answers PROBE_REPLACED, leaving no fd open, when the path is unlinked and recreated between its open and its flock', async () => {
    // A shell loop swaps the file at the path as fast as it can; sooner or later a probe opens one
    // inode and has it unlinked under it before its flock.
    const path = join(tempDir(), 'swapped.lock');
    writeFileSync(path, '');
    const swapper = startProcess('sh', ['-c', `echo GO; while :; do rm -f '${path}'; : > '${path}'; done`]);
    await swapper.waitFor('GO');
    const before = openFds();
    let replaced = 0;
    const deadline = Date.now() + 5_000;
    while (replaced === 0 && Date.now() < deadline) {
      for (let i = 0; i < 1_000; i++) {
        let fd: number;
        try {
          fd = probeLockFile(path, EX, false);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue; // between rm and create
          throw error;
        }
        if (fd === PROBE_REPLACED) replaced++;
        else closeSync(fd);
      }
    }
    expect(replaced).toBeGreaterThan(0);
    expect(openFds()).toEqual(before);
  });

  it('refuses what is not our regular file, closing what it opened', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'a-dir.lock'));
    execFileSync('mkfifo', [join(dir, 'a-fifo.lock')]);
    symlinkSync(join(dir, 'target'), join(dir, 'a-link.lock'));
    const before = openFds();
    expect(thrown(() => probeLockFile(join(dir, 'a-dir.lock'), EX, false))).toMatchObject({ code: 'EISDIR', syscall: 'open' });
    expect(thrown(() => probeLockFile(join(dir, 'a-fifo.lock'), EX, false))).toMatchObject({ code: 'EFTYPE', syscall: 'open' });
    expect(thrown(() => probeLockFile(join(dir, 'a-link.lock'), EX, true))).toMatchObject({ code: 'ELOOP', syscall: 'open' });
    expect(existsSync(join(dir, 'target'))).toBe(false);
    expect(openFds()).toEqual(before);
    // The refused directory is not left locked by the probe either.
    const dirFd = openSync(join(dir, 'a-dir.lock'), 'r');
    expect(fdLock(dirFd)).toBeNull();
    closeSync(dirFd);
  });

  it.skipIf(process.geteuid?.() !== 0)('refuses a lockfile owned by another uid, also right after accepting our own', () => {
    const dir = tempDir();
    const ours = join(dir, 'ours.lock');
    const theirs = join(dir, 'theirs.lock');
    writeFileSync(ours, '');
    writeFileSync(theirs, '');
    chownSync(theirs, 65534, 65534);
    closeSync(probeLockFile(ours, EX, false));
    expect(thrown(() => probeLockFile(theirs, EX, false))).toMatchObject({
      code: 'EPERM',
      message: expect.stringContaining('owned by uid 65534'),
    });
    closeSync(probeLockFile(ours, EX, false));
  });

  it.skipIf(process.geteuid?.() !== 0)('after a seteuid, asks the kernel again at the first file the old euid does not own', async () => {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    const root = join(dir, 'root.lock');
    const nobody = join(dir, 'nobody.lock');
    writeFileSync(root, '');
    writeFileSync(nobody, '');
    chownSync(nobody, 65534, 65534);
    const helper = startHelper('probe-after-seteuid.mjs', [root, nobody, '65534']);
    await helper.waitFor('root.lock as 65534:');
    const exit = await helper.exited;
    expect(helper.lines).toEqual([
      'root.lock as root: fd',
      // documented: a file the previous euid owns is accepted until the first file it does not own
      'root.lock as 65534, before anything else: fd',
      'nobody.lock as 65534: fd',
      'root.lock as 65534: EPERM',
    ]);
    expect(exit.code).toBe(0);
  });

  it.each([
    ['LOCK_UN', LOCK_UN, /a probe never waits/],
    ['a blocking LOCK_EX', LOCK_EX, /a probe never waits/],
    ['LOCK_SH|LOCK_EX', LOCK_SH | LOCK_EX | LOCK_NB, /must be LOCK_SH, LOCK_EX or LOCK_UN/],
  ])('refuses %s as its operation', (_name, op, message) => {
    expect(thrown(() => probeLockFile('/nonexistent/x.lock', op, false))).toMatchObject({
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_VALUE',
      message: expect.stringMatching(message),
    });
  });

  it.each([
    ['null', null, 'ERR_INVALID_ARG_TYPE', /must be of type Float64Array\. Received null$/],
    ['a Float32Array', new Float32Array(1), 'ERR_INVALID_ARG_TYPE', /Received an instance of Float32Array$/],
    ['an empty Float64Array', new Float64Array(0), 'ERR_OUT_OF_RANGE', /"mtimeOut\.length" is out of range/],
    ['a plain array', [0], 'ERR_INVALID_ARG_TYPE', /Received an instance of Array$/],
  ])('refuses %s as mtimeOut, before touching the file', (_name, out, code, message) => {
    const path = join(tempDir(), 'untouched.lock');
    expect(thrown(() => probeLockFile(path, EX, true, out as never))).toMatchObject({ code, message: expect.stringMatching(message) });
    expect(existsSync(path)).toBe(false);
  });
});

describe('dropLockFile', () => {
  it('unlinks the lockfile, then releases the lock by closing the fd', () => {
    const path = join(tempDir(), 'drop.lock');
    const fd = probeLockFile(path, EX, true);
    const link = `/proc/self/fd/${fd}`;
    dropLockFile(fd, path);
    expect(existsSync(path)).toBe(false);
    expect(existsSync(link)).toBe(false);
  });

  it('still closes the fd when the unlink fails, and throws the unlink’s error after', () => {
    const path = join(tempDir(), 'gone.lock');
    const fd = openLockFile(path, true);
    const link = `/proc/self/fd/${fd}`;
    const elsewhere = join(tempDir(), 'never-there.lock');
    expect(thrown(() => dropLockFile(fd, elsewhere))).toMatchObject({ code: 'ENOENT', syscall: 'unlink', path: elsewhere });
    expect(existsSync(link)).toBe(false);
  });

  it('refuses a closed fd without unlinking anything', () => {
    const path = join(tempDir(), 'kept.lock');
    const fd = openLockFile(path, true);
    closeSync(fd);
    expect(thrown(() => dropLockFile(fd, path))).toMatchObject({ code: 'EBADF' });
    expect(existsSync(path)).toBe(true);
  });
});

describe('readdirMatching', () => {
  it('gives the middle of every name between the prefix and the suffix, nothing else', () => {
    const dir = tempDir();
    for (const name of [
      'cc-ci-app-a.example.lock',
      'cc-ci-app-b.example.lock',
      'cc-ci-app-.lock',
      'cc-ci-app-c.example',
      'x-cc-ci-app-d.lock',
      'cc-ci-app-e.lock.bak',
    ]) {
      writeFileSync(join(dir, name), '');
    }
    mkdirSync(join(dir, 'cc-ci-app-f.example.lock')); // listed: whether it is a lockfile is the prober's business
    expect(readdirMatching(dir, 'cc-ci-app-', '.lock').sort()).toEqual(['a.example', 'b.example', 'f.example']);
    expect(readdirMatching(dir, '', '').sort()).toEqual(readdirSync(dir).sort());
  });

  it('lists thousands of entries in one call', () => {
    const dir = tempDir();
    const names = Array.from({ length: 3000 }, (_, i) => `n${i}`);
    for (const name of names) closeSync(openSync(join(dir, `p-${name}.s`), 'w'));
    expect(readdirMatching(dir, 'p-', '.s').sort()).toEqual(names.sort());
  });

  it('reports the kernel’s refusal with the path', () => {
    const missing = join(tempDir(), 'missing');
    expect(thrown(() => readdirMatching(missing, 'a', 'b'))).toMatchObject({ code: 'ENOENT', syscall: 'opendir', path: missing });
    const file = join(tempDir(), 'file');
    writeFileSync(file, '');
    expect(thrown(() => readdirMatching(file, 'a', 'b'))).toMatchObject({ code: 'ENOTDIR', syscall: 'opendir', path: file });
  });

  it.each([
    ['a number dir', () => readdirMatching(1 as never, 'a', 'b'), /"dir" argument must be of type string/],
    ['a missing prefix', () => readdirMatching('/', undefined as never, 'b'), /"prefix" argument must be of type string/],
    ['a NUL in the suffix', () => readdirMatching('/', 'a', 'b\0'), /'suffix' must be a string without null bytes/],
  ])('refuses %s', (_name, call, message) => {
    expect(thrown(call)).toMatchObject({ name: 'TypeError', message: expect.stringMatching(message) });
  });
});
