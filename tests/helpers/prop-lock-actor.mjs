// Helper process for the lock-protocol property test (tests/lock/property.test.ts): one "actor" driven
// over stdin/stdout, one JSON object per line. Requests carry an `id` and get exactly one reply
// with that id; things that finish later (a lock granted, a sweep done) are reported as events.
//
//   {id, op:'acquire', domain, abortMs?}  acquireAppLock (waits as long as it must; abortMs cancels)
//                                         -> reply {id, started}; event {event:'acquired'|'acquire-failed', domain, ...}
//   {id, op:'probe', domain}              probeLock -> {id, state} | {id, error}
//   {id, op:'reap', domains, delayMs}     janitor() with `domains` as its discovery and a teardown
//                                         that takes delayMs (0: synchronous) -> reply {id, started};
//                                         event {event:'reaped', sweep, report}
//   {id, op:'unlink', domain}             the tidy step: open (never create), LOCK_EX|LOCK_NB, unlink
//                                         only if the fd is still the file the path names, close
//                                         -> {id, result: 'absent'|'held'|'replaced'|'unlinked'}
//   {id, op:'status'}                     what this process believes, read in one JS turn:
//                                         {id, pid, held:[{domain, path, fd, fdIno, fdDev, pathIno, pathDev, same}],
//                                          pending:[domain], reaping:[domain]}
import { closeSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { createInterface } from 'node:readline';

// CCCI_PROP_DIST points at another build of the library (a deliberately broken copy, to show the
// property test catches the break); default: this checkout's dist/.
const dist = process.env.CCCI_PROP_DIST
  ? `file://${process.env.CCCI_PROP_DIST.replace(/\/?$/, '/')}`
  : new URL('../../dist/', import.meta.url).href;
const { acquireAppLock, heldAppLocks, janitor, lockPath, probeLock } = await import(`${dist}lib/index.js`);
const { LOCK_EX, LOCK_NB, flock, identity, openLockFile, pathIdentity, sameFile } = await import(`${dist}lib/native.js`);

const pending = new Set();
const reaping = new Map(); // domain -> number of teardowns of it in progress here
let sweeps = 0;

const send = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);
const log = (line) => process.stderr.write(`[actor ${process.pid}] ${line}\n`);
const describe = (error) => `${error?.code ?? error?.name ?? 'Error'}: ${String(error?.message ?? error).split('\n')[0]}`;

function pathId(path) {
  try {
    const id = pathIdentity(path);
    return { pathIno: String(id.ino), pathDev: String(id.dev) };
  } catch {
    return { pathIno: null, pathDev: null };
  }
}

/**
 * Whether this process holds a WRITE flock on the inode `path` names right now, as the kernel
 * says (/proc/locks lists the pid that took each lock).
 */
function lockOnPath(path) {
  let st;
  try {
    st = statSync(path, { bigint: true });
  } catch (error) {
    return { lockedByMe: false, why: `path ${error.code}` };
  }
  const major = ((st.dev >> 8n) & 0xfffn) | ((st.dev >> 32n) & ~0xfffn);
  const minor = (st.dev & 0xffn) | ((st.dev >> 12n) & ~0xffn);
  const key = `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${st.ino}`;
  const mine = readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .some((line) => new RegExp(`^\\d+:\\s+FLOCK\\s+\\S+\\s+WRITE\\s+${process.pid}\\s+${key}\\s`).test(line));
  return mine ? { lockedByMe: true } : { lockedByMe: false, why: `no WRITE lock of pid ${process.pid} on ${key}` };
}

const handlers = {
  acquire({ domain, abortMs }) {
    pending.add(domain);
    const signal = abortMs === undefined ? undefined : AbortSignal.timeout(abortMs);
    acquireAppLock(domain, { signal, log }).then(
      (lock) => {
        pending.delete(domain);
        send({ event: 'acquired', domain, fd: lock.fd });
      },
      (error) => {
        pending.delete(domain);
        send({ event: 'acquire-failed', domain, error: describe(error) });
      },
    );
    return { started: true };
  },

  probe({ domain }) {
    return { state: probeLock(domain) };
  },

  reap({ domains, delayMs }) {
    const sweep = ++sweeps;
    const teardown = (domain) => {
      reaping.set(domain, (reaping.get(domain) ?? 0) + 1);
      // The janitor must tear down only while holding the lock on the inode the path names.
      send({ event: 'teardown', sweep, domain, ...lockOnPath(lockPath(domain)) });
      const done = () => {
        const left = reaping.get(domain) - 1;
        if (left === 0) reaping.delete(domain);
        else reaping.set(domain, left);
      };
      if (!delayMs) return void done();
      return new Promise((resolve) => setTimeout(() => resolve(done()), delayMs));
    };
    janitor({ discover: () => domains, teardown, log: (line) => log(`janitor#${sweep}: ${line}`) }).then(
      (report) => send({ event: 'reaped', sweep, report }),
      (error) => send({ event: 'reap-failed', sweep, error: describe(error) }),
    );
    return { started: true, sweep };
  },

  unlink({ domain }) {
    const path = lockPath(domain);
    let fd;
    try {
      fd = openLockFile(path, false);
    } catch (error) {
      if (error.code === 'ENOENT') return { result: 'absent' };
      throw error;
    }
    try {
      if (!flock(fd, LOCK_EX | LOCK_NB)) return { result: 'held' };
      if (!sameFile(fd, path)) return { result: 'replaced' };
      unlinkSync(path); // while holding the lock on the inode the path named: the tidy sweep's rule
      return { result: 'unlinked' };
    } finally {
      closeSync(fd);
    }
  },

  status() {
    const held = heldAppLocks().map(({ domain, path, fd }) => {
      const id = identity(fd);
      return { domain, path, fd, fdIno: String(id.ino), fdDev: String(id.dev), ...pathId(path), same: sameFile(fd, path) };
    });
    return { pid: process.pid, held, pending: [...pending], reaping: [...reaping.keys()] };
  },
};

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (!line.trim()) return;
  let request;
  try {
    request = JSON.parse(line);
  } catch (error) {
    send({ event: 'bad-request', line, error: describe(error) });
    return;
  }
  const { id, op } = request;
  try {
    const handler = handlers[op];
    if (!handler) throw new Error(`unknown op ${JSON.stringify(op)}`);
    send({ id, ...handler(request) });
  } catch (error) {
    send({ id, error: describe(error) });
  }
});
lines.on('close', () => process.exit(0));
send({ event: 'ready', pid: process.pid });
