// Helper process for the orphan-refusal cases: a guarded child whose parent is gone before the
// child installs its guards.
//
//   lifetime-orphan.mjs subreaper <mode>     become a child subreaper, start an intermediate, idle
//   lifetime-orphan.mjs intermediate <mode>  start the child, wait until it has loaded, exit
//   lifetime-orphan.mjs child <mode>         wait to be reparented, then install the guards
//
// Modes: `early`: the child loads the lifetime module while its first parent is alive (so the
// module records that parent). `late-expect`: the intermediate sets CCCI_EXPECTED_PPID to its own
// pid, and the child loads the module only after it was adopted: only that variable can tell.
import { spawn } from 'node:child_process';
import { writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { getppid, setChildSubreaper } from '../../dist/lib/native.js';

const [role, mode] = process.argv.slice(2);
const self = fileURLToPath(import.meta.url);
const out = (line) => writeSync(1, `${line}\n`);

if (role === 'subreaper') {
  setChildSubreaper(true);
  out(`SUBREAPER ${process.pid}`);
  spawn(process.execPath, [self, 'intermediate', mode], { stdio: 'inherit' });
  setInterval(() => {}, 1 << 30);
} else if (role === 'intermediate') {
  const env = { ...process.env };
  if (mode === 'late-expect') env.CCCI_EXPECTED_PPID = String(process.pid);
  const child = spawn(process.execPath, [self, 'child', mode], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env });
  out(`INTERMEDIATE ${process.pid} CHILD ${child.pid}`);
  child.once('message', () => process.exit(0)); // the child has loaded: now orphan it
} else if (role === 'child') {
  process.on('exit', (code) => out(`EXIT ${code}`));
  const first = getppid();
  const load = () => import('../../dist/lib/lifetime.js');
  const early = mode === 'early' ? await load() : undefined;
  process.send('loaded');
  process.disconnect();
  while (getppid() === first) await new Promise((resolve) => setTimeout(resolve, 5));
  out(`REPARENTED from ${first} to ${getppid()}`);
  const { installLifetimeGuards } = early ?? (await load());
  const lifetime = installLifetimeGuards();
  lifetime.onTeardown(() => out('TEARDOWN'));
  out('GUARDS_OK');
  await lifetime.run(async () => 0);
}
