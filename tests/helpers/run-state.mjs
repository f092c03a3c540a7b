// Helper process: what a run does with its state files before and after the app lock —
// create them, count its one deploy, take the lock (blocking while another run holds it),
// report, and at a normal end remove them.
import { readFileSync } from 'node:fs';

import { acquireAppLock } from '../../dist/lib/index.js';
import { createRunState, recordDeploy, removeRunState } from '../../dist/lib/run-state.js';

const [domain, holdMs] = process.argv.slice(2);
const files = createRunState();
console.log(`FILES ${JSON.stringify(files)}`);
recordDeploy(files);
await acquireAppLock(domain, { log: (line) => console.log(line) });
console.log(`LOCKED count=${readFileSync(files.deployCount, 'utf8')}`);
await new Promise((resolve) => setTimeout(resolve, Number(holdMs)));
console.log(`BEFORE-EXIT count=${readFileSync(files.deployCount, 'utf8')}`);
removeRunState(files);
console.log('DONE');
