// Helper process: starts `count` lock waits on a lockfile someone else holds, says WAITING once
// the kernel has them queued, then calls process.exit() after `exitAfterMs` (count 0: no waits,
// the comparison case). A wait pending on a thread must not keep the process from ending.
import { readFileSync } from 'node:fs';

import { LOCK_EX, flockWait, openLockFile } from '../../dist/lib/native.js';

const [path, count = '1', exitAfterMs = '0'] = process.argv.slice(2);
for (let i = 0; i < Number(count); i++) {
  flockWait(openLockFile(path, true), LOCK_EX).then(
    () => console.log('GRANTED (unexpected)'),
    (error) => console.log(`REJECTED ${error.code}`),
  );
}
// Queued in the kernel: one "->" entry of ours per wait in /proc/locks.
const queued = () =>
  readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .filter((l) => l.includes('->') && l.includes(` ${process.pid} `)).length;
while (queued() < Number(count)) await new Promise((r) => setTimeout(r, 5));
console.log(`WAITING ${count}`);
setTimeout(() => {
  console.log(`EXITING at=${Date.now()}`);
  process.exit(0);
}, Number(exitAfterMs));
