// Helper process: takes the app lock for a domain through the real library, says so, then waits
// to be killed. `--spawn-child` first starts a long-lived grandchild (to prove the lock fd is not
// inherited); `--exit-after MS` exits on its own.
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';

import { acquireAppLock } from '../../dist/lib/index.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { 'spawn-child': { type: 'boolean' }, 'exit-after': { type: 'string' } },
});
const [domain] = positionals;
const lock = await acquireAppLock(domain, { log: (line) => console.log(line) });
console.log(`HELD ${domain} pid=${process.pid} fd=${lock.fd} at=${Date.now()}`);
if (values['spawn-child']) {
  const child = spawn('sleep', ['300'], { stdio: 'ignore' });
  console.log(`CHILD ${child.pid}`);
}
if (values['exit-after']) setTimeout(() => process.exit(0), Number(values['exit-after']));
else setInterval(() => {}, 1 << 30);
