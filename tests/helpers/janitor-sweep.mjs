// Helper process: one janitor sweep over the domains given as arguments, in the lock dir the test
// exported. Its discovery says READY and answers on SIGUSR1, so two of them sweep together, each
// having listed the lock dir before discovering (as a real sweep does). Its teardown prints
// TEARDOWN <domain> and, unless --instant, holds on until SIGUSR2. At the end: REPORT <json>.
import { janitor } from '../../dist/lib/janitor.js';

const instant = process.argv.includes('--instant');
const domains = process.argv.slice(2).filter((arg) => arg !== '--instant');
const alive = setInterval(() => {}, 1 << 30); // signal listeners alone do not keep node running
const signalled = (name) => new Promise((resolve) => process.once(name, resolve));
const go = signalled('SIGUSR1');
const release = signalled('SIGUSR2');
const report = await janitor({
  discover: async () => {
    console.log(`READY pid=${process.pid}`);
    await go;
    return domains;
  },
  teardown: (domain) => {
    console.log(`TEARDOWN ${domain}`);
    return instant ? undefined : release;
  },
  log: () => {},
});
console.log(`REPORT ${JSON.stringify(report)}`);
clearInterval(alive);
