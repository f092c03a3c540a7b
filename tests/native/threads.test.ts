// Where a wait blocks: on a thread of its own, never the event loop and never libuv's 4-thread
// pool. So 64 pending waits leave fs calls and timers running, a process with waits pending still
// ends at process.exit(), and a worker thread with a wait pending can be terminated.
import { closeSync, promises as fsp } from 'node:fs';
import { Worker } from 'node:worker_threads';

import { describe, expect, it } from 'vitest';

import { LOCK_EX, LOCK_SH, flockWait, openLockFile } from '../../lib/native.js';
import { fdLock, flockCanTake, heldElsewhere, waitersOf } from '../support/kernel-locks.js';
import { eventually, startHelper, useHelpers } from '../support/processes.js';

useHelpers();

describe('a pending wait', () => {
  it('64 of them in one process leave fs.promises.readFile prompt, and all wake when the holder goes', async () => {
    const { path, release } = await heldElsewhere();
    const fds = Array.from({ length: 64 }, () => openLockFile(path, false));
    const waits = fds.map((fd) => flockWait(fd, LOCK_SH));
    await eventually(() => waitersOf(process.pid, path).length === 64, 10_000, '64 queued waits');

    // With the waits on libuv's pool (4 threads), none of these could ever start.
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 32 }, () => fsp.readFile(path)));
    expect(performance.now() - t0).toBeLessThan(1000);

    await release();
    await Promise.all(waits);
    expect(fds.map(fdLock)).toEqual(fds.map(() => 'READ'));
    for (const fd of fds) closeSync(fd);
  });

  it('leaves the event loop free: a setInterval keeps ticking while the wait blocks', async () => {
    const { path } = await heldElsewhere();
    const fd = openLockFile(path, false);
    let ticks = 0;
    const interval = setInterval(() => ticks++, 10);
    const wait = flockWait(fd, LOCK_EX, { timeoutMs: 500 }).catch((error: NodeJS.ErrnoException) => error.code);
    await eventually(() => waitersOf(process.pid, path).length === 1, 5000, 'the wait queued');
    const before = ticks;
    expect(await wait).toBe('ETIMEDOUT');
    clearInterval(interval);
    expect(ticks - before).toBeGreaterThanOrEqual(10); // ~40 expected; 10 allows a loaded machine
    closeSync(fd);
  });

  it('does not keep a process from ending promptly at process.exit()', async () => {
    const { path } = await heldElsewhere();
    for (const count of ['1', '64']) {
      const helper = startHelper('wait-exit.mjs', [path, count, '50']);
      await helper.waitFor(`WAITING ${count}`);
      const line = await helper.waitFor('EXITING');
      const exit = await helper.exited;
      expect(exit).toEqual({ code: 0, signal: null });
      expect(Date.now() - Number(/at=(\d+)/.exec(line)![1])).toBeLessThan(2000); // ends, it does not hang
      expect(waitersOf(helper.pid)).toEqual([]);
    }
    expect(flockCanTake(path)).toBe(false); // and the holder is untouched
  });

  it('is cancelled when its worker thread is terminated, leaving the lock free', async () => {
    const { path, release } = await heldElsewhere();
    const native = new URL('../../dist/lib/native.js', import.meta.url).href;
    const worker = new Worker(
      `import(${JSON.stringify(native)}).then(({ flockWait, openLockFile, LOCK_EX }) => {
         const fd = openLockFile(${JSON.stringify(path)}, false);
         flockWait(fd, LOCK_EX);
         require('node:worker_threads').parentPort.postMessage(fd);
       });`,
      { eval: true },
    );
    const fd = await new Promise<number>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await eventually(() => waitersOf(process.pid, path).length === 1, 5000, 'the worker’s wait queued');
    await worker.terminate();
    await eventually(() => waitersOf(process.pid, path).length === 0, 5000, 'the wait gone with its worker');
    await release();
    expect(fdLock(fd)).toBeNull(); // the worker's fd (shared by the process) was left unlocked
    expect(flockCanTake(path)).toBe(true);
    closeSync(fd);
  });
});
