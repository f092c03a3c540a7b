// Helper process: holds an exclusive app lock on every path listed (one per line) in the file
// given as argument, through the addon's own open and flock, then says so and waits to be killed.
// One process holding thousands of locks is how the janitor bench makes half its candidates live.
import { readFileSync } from 'node:fs';

import { LOCK_EX, LOCK_NB, flock, openLockFile } from '../../dist/lib/native.js';

const paths = readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean);
const fds = [];
for (const path of paths) {
  const fd = openLockFile(path, true);
  if (!flock(fd, LOCK_EX | LOCK_NB)) throw new Error(`already held: ${path}`);
  fds.push(fd);
}
console.log(`HELD ${fds.length} pid=${process.pid}`);
setInterval(() => {}, 1 << 30);
