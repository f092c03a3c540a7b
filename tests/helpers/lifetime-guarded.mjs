// Helper process: a guarded "run" through the real library. Installs the lifetime guards, registers
// three teardown steps (the middle one throws), optionally takes an app lock, then runs a main
// whose shape the flags choose. Markers go to stdout synchronously; the guards' own lines to stderr.
//
//   lifetime-guarded.mjs [domain] [--deadline S] [--budget S] [--child] [--execa-exit-hook] [--throw] [--exit N]
//                        [--ignore-abort] [--stall] [--no-run [--drain]] [--slow-teardown MS]
//                        [--hang-teardown] [--wedge-teardown] [--install-twice] [--broken-log]
import { writeSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { execa } from 'execa';

import { acquireAppLock } from '../../dist/lib/lock.js';
import { installLifetimeGuards } from '../../dist/lib/lifetime.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    deadline: { type: 'string' },
    budget: { type: 'string' },
    child: { type: 'boolean' },
    'execa-exit-hook': { type: 'boolean' },
    throw: { type: 'boolean' },
    exit: { type: 'string' },
    'ignore-abort': { type: 'boolean' },
    stall: { type: 'boolean' },
    'no-run': { type: 'boolean' },
    drain: { type: 'boolean' },
    'slow-teardown': { type: 'string' },
    'hang-teardown': { type: 'boolean' },
    'wedge-teardown': { type: 'boolean' },
    'install-twice': { type: 'boolean' },
    'broken-log': { type: 'boolean' },
  },
});
const [domain] = positionals;
const out = (line) => writeSync(1, `${line}\n`);
process.on('exit', (code) => out(`EXIT ${code}`));

let lifetime;
try {
  lifetime = installLifetimeGuards({
    deadlineSeconds: values.deadline === undefined ? undefined : Number(values.deadline),
    teardownBudgetSeconds: values.budget === undefined ? undefined : Number(values.budget),
    log: values['broken-log']
      ? () => {
          throw new Error('ENOSPC: no space left on device, write');
        }
      : undefined,
  });
  if (values['install-twice']) installLifetimeGuards();
} catch (error) {
  out(`ERROR ${error.name} ${error.code} ${error.message}`);
  process.exit(2);
}

lifetime.onTeardown(() => out('TEARDOWN 1'));
lifetime.onTeardown(() => {
  throw new Error('teardown boom');
});
lifetime.onTeardown(async () => {
  out('TEARDOWN 3');
  if (values['slow-teardown']) {
    await new Promise((resolve) => setTimeout(resolve, Number(values['slow-teardown'])));
    out('TEARDOWN 3 done');
  }
  if (values['hang-teardown']) await new Promise(() => {});
  if (values['wedge-teardown']) for (;;);
});

const ready = () => out(`READY pid=${process.pid} ppid=${process.ppid} at=${Date.now()}`);
// Forever, unless the run is aborted.
const untilAborted = (signal) =>
  new Promise((_, reject) => {
    const keepAlive = setInterval(() => {}, 1 << 30);
    signal.addEventListener('abort', () => {
      clearInterval(keepAlive);
      reject(signal.reason);
    });
  });

if (values['no-run']) {
  if (domain) await acquireAppLock(domain, { signal: lifetime.signal, log: out });
  ready();
  if (values.drain)
    process.exitCode = 3; // and let the event loop run dry
  else setInterval(() => {}, 1 << 30);
} else {
  await lifetime.run(async (signal) => {
    if (domain) await acquireAppLock(domain, { signal, log: out });
    if (values.child) {
      // cleanup: false, so that only the run's signal can end it (execa's own exit hook would too).
      // --execa-exit-hook keeps that hook: signal-exit then listens for every guarded signal too.
      const sleeper = execa('sleep', ['300'], { cancelSignal: signal, cleanup: values['execa-exit-hook'] === true });
      out(`CHILD ${sleeper.pid}`);
      ready();
      await sleeper;
    }
    ready();
    if (values.throw) throw new Error('main boom');
    if (values.exit !== undefined) return Number(values.exit);
    if (values.stall) await new Promise(() => {});
    if (values['ignore-abort']) await new Promise(() => setInterval(() => {}, 1 << 30));
    return untilAborted(signal);
  });
}
