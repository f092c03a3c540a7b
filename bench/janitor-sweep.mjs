// The cc-ci side of `npm run bench janitor`: a child process per round, exactly like the C and
// Python loops, so no side keeps one process's luck (heap layout, CPU, caches) for the whole
// bench. It runs the compiled janitor, as the `cc-ci janitor` command does.
// Usage: janitor-sweep.mjs <lock dir> <listing> <reps>; prints per-candidate ns as JSON.
import { closeSync, openSync, readFileSync } from 'node:fs';

import { janitor } from '../dist/lib/janitor.js';

const [dir, listing, repsArg] = process.argv.slice(2);
if (!dir || !listing || !repsArg) throw new Error('usage: janitor-sweep.mjs <lock dir> <listing> <reps>');
process.env.CCCI_APP_LOCK_DIR = dir;
process.env.CCCI_BASE_DOMAIN = 'ci.commoninternet.net'; // the bench's candidates are named under it

const entries = readFileSync(listing, 'utf8')
  .trimEnd()
  .split('\n')
  .map((line) => [line[0], line.slice(2)]);
const candidates = entries.map(([, domain]) => domain);
const orphanPaths = entries.filter(([kind]) => kind === 'O').map(([, domain]) => `${dir}/cc-ci-app-${domain}.lock`);
const noop = () => {};
const hooks = { discover: () => candidates, teardown: noop, log: noop, deadlineSeconds: 3600 };

const samples = [];
for (let r = -1; r < Number(repsArg); r++) {
  for (const path of orphanPaths) closeSync(openSync(path, 'w'));
  const t0 = process.hrtime.bigint();
  const report = await janitor(hooks);
  const ns = Number(process.hrtime.bigint() - t0) / candidates.length;
  if (report.reaped.length !== orphanPaths.length || report.live.length !== candidates.length - orphanPaths.length) {
    throw new Error(
      `janitor bench: expected ${orphanPaths.length} reaped, got ${report.reaped.length} reaped and ${report.live.length} live`,
    );
  }
  if (r >= 0) samples.push(ns);
}
process.stdout.write(`${JSON.stringify(samples)}\n`);
