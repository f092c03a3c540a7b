// Helper process: holds a domain's app lock like a janitor reaping it: on SIGUSR2 it unlinks the
// lockfile it still holds and says so; the test then kills it, releasing the (now nameless) inode.
import { unlinkSync } from 'node:fs';

import { acquireAppLock } from '../../dist/lib/index.js';

const [domain] = process.argv.slice(2);
const lock = await acquireAppLock(domain, { log: (line) => console.log(line) });
process.on('SIGUSR2', () => {
  unlinkSync(lock.path);
  console.log(`UNLINKED ${lock.path}`);
});
console.log(`HELD ${domain} pid=${process.pid}`);
setInterval(() => {}, 1 << 30);
