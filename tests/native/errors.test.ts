// Every addon export fails the way a Node API does: system-call errors carry `code`, `errno`,
// `syscall` (and `path`) with Node's message shape; bad arguments are TypeError/RangeError with
// Node's ERR_* codes. The busy lock is not an error at all: flock() answers false.
import { closeSync, openSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import * as native from '../../lib/native.js';
import { LOCK_EX, LOCK_NB, LOCK_SH, LOCK_UN, flock, flockWait, openLockFile } from '../../lib/native.js';
import { thrown } from '../support/errors.js';
import { startProcess, tempDir, useHelpers } from '../support/processes.js';

useHelpers();

/** A file descriptor number that was just closed. */
function closedFd(): number {
  const fd = openSync('/dev/null', 'r');
  closeSync(fd);
  return fd;
}

const typeError = (code: string, message: RegExp) =>
  expect.objectContaining({ name: 'TypeError', code, message: expect.stringMatching(message) });
const rangeError = (code: string, message: RegExp) =>
  expect.objectContaining({ name: 'RangeError', code, message: expect.stringMatching(message) });

describe('system-call errors', () => {
  it('flock on a closed fd throws EBADF in Node’s shape', () => {
    const error = thrown(() => flock(closedFd(), LOCK_EX | LOCK_NB));
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({
      code: 'EBADF',
      errno: -constants.errno.EBADF,
      syscall: 'flock',
      message: 'EBADF: bad file descriptor, flock',
    });
  });

  it('flock answers false, not an error, on a busy lock (EWOULDBLOCK), for both lock types', () => {
    const path = join(tempDir(), 'busy.lock');
    const holder = openLockFile(path, true);
    const other = openLockFile(path, false);
    expect(flock(holder, LOCK_EX | LOCK_NB)).toBe(true);
    expect(flock(other, LOCK_EX | LOCK_NB)).toBe(false);
    expect(flock(other, LOCK_SH | LOCK_NB)).toBe(false);
    expect(flock(other, LOCK_UN)).toBe(true); // unlocking what one does not hold is not an error
    expect(flock(holder, LOCK_UN)).toBe(true);
    expect(flock(other, LOCK_EX | LOCK_NB)).toBe(true);
    closeSync(holder);
    closeSync(other);
  });

  it('flockWait rejects (never throws) a system-call failure', async () => {
    await expect(flockWait(closedFd(), LOCK_EX)).rejects.toMatchObject({ code: 'EBADF', syscall: 'flock', errno: -constants.errno.EBADF });
  });

  it('identity, pathIdentity and sameFile report fstat/stat/lstat failures', () => {
    expect(thrown(() => native.identity(closedFd()))).toMatchObject({ code: 'EBADF', syscall: 'fstat' });
    const missing = join(tempDir(), 'missing');
    expect(thrown(() => native.pathIdentity(missing))).toMatchObject({
      code: 'ENOENT',
      errno: -constants.errno.ENOENT,
      syscall: 'stat',
      path: missing,
      message: `ENOENT: no such file or directory, stat '${missing}'`,
    });
    expect(thrown(() => native.sameFile(closedFd(), '/'))).toMatchObject({ code: 'EBADF', syscall: 'fstat' });
    expect(thrown(() => native.pathIdentity('x'.repeat(5000)))).toMatchObject({ code: 'ENAMETOOLONG', syscall: 'stat' });
  });

  it('openLockFile reports the kernel’s refusal with the path', () => {
    const missingDir = join(tempDir(), 'no-such-dir', 'x.lock');
    expect(thrown(() => openLockFile(missingDir, true))).toMatchObject({ code: 'ENOENT', syscall: 'open', path: missingDir });
    expect(thrown(() => openLockFile(missingDir, false))).toMatchObject({ code: 'ENOENT', syscall: 'open' });
  });

  it('setsid in a process that already leads its group throws EPERM', async () => {
    const script = `
      import { setsid, getppid } from ${JSON.stringify(new URL('../../dist/lib/native.js', import.meta.url).href)};
      const first = setsid();
      let second; try { setsid(); } catch (e) { second = { code: e.code, syscall: e.syscall, message: e.message }; }
      console.log(JSON.stringify({ pid: process.pid, first, second, ppid: getppid(), nodePpid: process.ppid }));`;
    const helper = startProcess(process.execPath, ['--input-type=module', '-e', script], { detached: false });
    const result = JSON.parse(await helper.waitFor(/^\{/));
    expect(result.first).toBe(result.pid);
    expect(result.second).toEqual({ code: 'EPERM', syscall: 'setsid', message: 'EPERM: operation not permitted, setsid' });
    expect(result.ppid).toBe(result.nodePpid);
  });
});

describe('process primitives', () => {
  it('getPdeathsig reads back what setPdeathsig set', () => {
    const before = native.getPdeathsig();
    try {
      native.setPdeathsig(constants.signals.SIGTERM);
      expect(native.getPdeathsig()).toBe(constants.signals.SIGTERM);
    } finally {
      native.setPdeathsig(before);
    }
  });

  it('alarm returns the seconds left on the previous alarm, and 0 cancels', () => {
    expect(native.alarm(0)).toBe(0);
    native.alarm(1000);
    expect(native.alarm(0)).toBeGreaterThan(990);
  });

  it('getChildSubreaper reads back what setChildSubreaper set', () => {
    const before = native.getChildSubreaper();
    try {
      native.setChildSubreaper(true);
      expect(native.getChildSubreaper()).toBe(true);
      native.setChildSubreaper(false);
      expect(native.getChildSubreaper()).toBe(false);
    } finally {
      native.setChildSubreaper(before);
    }
  });

  it('getppid asks the kernel', () => {
    expect(native.getppid()).toBe(process.ppid);
  });

  it('identity gives dev and ino as bigint, equal to fs.statSync’s bigint ones', () => {
    const path = join(tempDir(), 'id.lock');
    const fd = openLockFile(path, true);
    const id = native.identity(fd);
    const st = statSync(path, { bigint: true });
    expect(id).toEqual({ dev: st.dev, ino: st.ino });
    expect(native.pathIdentity(path)).toEqual(id);
    expect(native.sameFile(fd, path)).toBe(true);
    closeSync(fd);
  });
});

describe('bad arguments', () => {
  const fd = 0;
  it.each([
    [
      'flock without arguments',
      () => flock(undefined as never, LOCK_EX | LOCK_NB),
      typeError('ERR_INVALID_ARG_TYPE', /^The "fd" argument must be of type number\. Received undefined$/),
    ],
    [
      'flock with a string fd',
      () => flock('3' as never, LOCK_EX | LOCK_NB),
      typeError('ERR_INVALID_ARG_TYPE', /^The "fd" argument must be of type number\. Received type string \('3'\)$/),
    ],
    [
      'flock with a negative fd',
      () => flock(-1, LOCK_EX | LOCK_NB),
      rangeError('ERR_OUT_OF_RANGE', /^The value of "fd" is out of range\. It must be >= 0 && <= 2147483647\. Received -1$/),
    ],
    [
      'flock with a fractional fd',
      () => flock(1.5, LOCK_EX | LOCK_NB),
      rangeError('ERR_OUT_OF_RANGE', /It must be an integer\. Received 1\.5$/),
    ],
    ['flock with NaN', () => flock(Number.NaN, LOCK_EX | LOCK_NB), rangeError('ERR_OUT_OF_RANGE', /Received NaN$/)],
    [
      'flock with an object op',
      () => flock(fd, {} as never),
      typeError('ERR_INVALID_ARG_TYPE', /"operation" argument must be of type number\. Received an instance of Object$/),
    ],
    [
      'flock with SH|EX',
      () => flock(fd, LOCK_SH | LOCK_EX | LOCK_NB),
      typeError('ERR_INVALID_ARG_VALUE', /must be LOCK_SH, LOCK_EX or LOCK_UN/),
    ],
    ['flock blocking on the JS thread', () => flock(fd, LOCK_EX), typeError('ERR_INVALID_ARG_VALUE', /must include LOCK_NB.*flockWait/)],
    ['flockWait for LOCK_UN', () => flockWait(fd, LOCK_UN), typeError('ERR_INVALID_ARG_VALUE', /flockWait\(\) waits for a lock/)],
    [
      'flockWait with a negative timeout',
      () => flockWait(fd, LOCK_EX, { timeoutMs: -1 }),
      rangeError('ERR_OUT_OF_RANGE', /"options\.timeoutMs"/),
    ],
    [
      'flockWait with a timeout past setTimeout’s range',
      () => flockWait(fd, LOCK_EX, { timeoutMs: 2 ** 31 }),
      rangeError('ERR_OUT_OF_RANGE', /"options\.timeoutMs"/),
    ],
    [
      'flockWait with a non-signal',
      () => flockWait(fd, LOCK_EX, { signal: {} as never }),
      typeError('ERR_INVALID_ARG_TYPE', /"options\.signal"/),
    ],
    [
      // Refused before anything is armed: a backstop of 0 s would cancel the alarm instead.
      'armAlarmBackstop of 0 seconds',
      () => native.armAlarmBackstop(0),
      rangeError('ERR_OUT_OF_RANGE', /^The value of "seconds" is out of range\. It must be >= 1 && <= 4294967295\. Received 0$/),
    ],
    [
      'openLockFile with a number path',
      () => openLockFile(7 as never, true),
      typeError('ERR_INVALID_ARG_TYPE', /"path" argument must be of type string\. Received type number \(7\)$/),
    ],
    [
      'openLockFile with a NUL in the path',
      () => openLockFile('a\0b', true),
      typeError('ERR_INVALID_ARG_VALUE', /^The argument 'path' must be a string without null bytes\. Received 'a\\x00b'$/),
    ],
    [
      'openLockFile with a non-boolean create',
      () => openLockFile('/tmp/x', 1 as never),
      typeError('ERR_INVALID_ARG_TYPE', /"create" argument must be of type boolean/),
    ],
    ['identity with a bigint fd', () => native.identity(3n as never), typeError('ERR_INVALID_ARG_TYPE', /Received type bigint \(3n\)$/)],
    ['pathIdentity with null', () => native.pathIdentity(null as never), typeError('ERR_INVALID_ARG_TYPE', /Received null$/)],
    [
      'sameFile without a path',
      () => native.sameFile(fd, undefined as never),
      typeError('ERR_INVALID_ARG_TYPE', /"path" argument must be of type string/),
    ],
    ['setPdeathsig past SIGRTMAX', () => native.setPdeathsig(65), rangeError('ERR_OUT_OF_RANGE', /"signal" is out of range/)],
    [
      'setChildSubreaper with a string',
      () => native.setChildSubreaper('yes' as never),
      typeError('ERR_INVALID_ARG_TYPE', /"on" argument must be of type boolean/),
    ],
    ['alarm with a negative count', () => native.alarm(-1), rangeError('ERR_OUT_OF_RANGE', /"seconds" is out of range/)],
    ['alarm past 2^32-1', () => native.alarm(2 ** 32), rangeError('ERR_OUT_OF_RANGE', /"seconds" is out of range/)],
  ])('%s', (_name, call, expected) => {
    expect(thrown(call)).toEqual(expected);
  });

  it('exports the flock constants of <sys/file.h> and a real-time cancel signal', () => {
    expect({ LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN }).toEqual({ LOCK_SH: 1, LOCK_EX: 2, LOCK_NB: 4, LOCK_UN: 8 });
    expect(native.WAIT_CANCEL_SIGNAL).toBeGreaterThan(34); // SIGRTMIN as glibc hands it out
    expect(native.WAIT_CANCEL_SIGNAL).toBeLessThanOrEqual(64);
  });
});
