// A runner stand-in for the etcd fault tests: it takes one app lock on etcd through cc-ci's own code
// (dist/lib/etcd-lock.js) and then "acts on docker" every HOLDER_ACT_MS through the very gate that
// runner/host/exec.ts passes before every subprocess. Each event is one stdout line,
// `<EVENT> <ms> [detail]`, timed by performance.timeOrigin + performance.now(): comparable across
// processes, and untouched by a Date.now() a test shifts.
//   node etcd-holder.mjs <cluster> <domain>      (settings from CCCI_ETCD_*, CCCI_HOST_ID)
// On the lock's abort (the lease lost) it stops acting, lets go and exits 75, as a library user
// should; SIGTERM lets go and exits 0. With HOLDER_HANG=1 it starts a child (`sleep`, in its own
// process group) and never lets go: the lock itself must then end the child and the process.
import { spawn } from 'node:child_process';

import { checkActGates } from '../../dist/lib/act-gate.js';
import { EtcdLocks } from '../../dist/lib/etcd-lock.js';
import { etcdSettings } from '../../dist/lib/lock-backend.js';

const now = () => performance.timeOrigin + performance.now();
const say = (event, detail = '') => process.stdout.write(`${event} ${now().toFixed(1)} ${detail}\n`);

const [cluster, domain] = process.argv.slice(2);
const locks = new EtcdLocks({
  settings: etcdSettings(),
  cluster,
  runId: `holder-${process.pid}`,
  kind: 'run',
  onLost: (why) => say('LOST', why),
});
process.on('SIGTERM', async () => {
  await locks.releaseAll();
  say('RELEASED');
  process.exit(0);
});

say('START');
const lock = await locks.acquire(domain, { log: (line) => say('LOG', line) });
say('HELD', lock.generation);
const acting = setInterval(
  () => {
    try {
      checkActGates();
      say('ACT');
    } catch (error) {
      say('REFUSED', error.message);
    }
  },
  Number(process.env.HOLDER_ACT_MS ?? 100),
);
if (process.env.HOLDER_HANG === '1') {
  const child = spawn('sleep', ['600'], { stdio: 'ignore' });
  say('CHILD', String(child.pid));
}
lock.signal.addEventListener('abort', async () => {
  if (process.env.HOLDER_HANG === '1') {
    clearInterval(acting);
    say('HANGING');
    return;
  }
  clearInterval(acting);
  say('ABORTING');
  await locks.releaseAll();
  say('EXIT');
  process.exit(75);
});
