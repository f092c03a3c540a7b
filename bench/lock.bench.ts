// `npm run bench lock`: the addon's lock calls against a C program making the same system calls,
// built and run in this same run, interleaved with ours so both see the same machine load.
//
// (a)-(c) are CPU time per call (the C program measures the same way), (d)-(f) wall-clock latency.
//
// (a) try-lock + unlock round trip on an open fd            target ≤ 1.3× C
// (b) try-lock on a lock another process holds (busy path)  target ≤ 2× C
// (c) janitor probe cycle: open, try-lock, identity, close  target ≤ 1.5× C, free and held
// (g) public probeLock(domain): the shared-lock probe       target ≤ 1.5× C, free and held
// (d) wake latency: holder SIGKILLed → waiter holds lock     target ≤ 1.3× C median (≥ 50 rounds), and ahead of fs-ext
// (e) fs.stat latency with 64 waits pending vs none         target ≤ 2×
// (f) process.exit() with a wait pending vs none pending    target ≤ 1.5×
//
// fs-ext (flock on libuv's pool) is measured too when installed in BENCH_DEPS (default
// /tmp/bench-deps: `npm i fs-ext` there, never in this package); rows it cannot finish are shown
// as hung and the process is killed.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { closeSync, promises as fsp, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { probeLock } from '../lib/lock.js';
import { LOCK_EX, LOCK_NB, LOCK_UN, flock, flockWait, openLockFile, sameFile } from '../lib/native.js';
import { compileC, median, printTable, scratchDir, type Row } from './support.js';

const NATIVE = new URL('../dist/lib/native.js', import.meta.url).href;
const DEPS = process.env.BENCH_DEPS ?? '/tmp/bench-deps';
const WAKE_ROUNDS = Number(process.env.BENCH_WAKE_ROUNDS ?? 60);
const EXIT_ROUNDS = Number(process.env.BENCH_EXIT_ROUNDS ?? 40);
const HOT_ROUNDS = Number(process.env.BENCH_HOT_ROUNDS ?? 12);
const HANG_MS = 3000;

const C_SOURCE = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000LL + t.tv_nsec; }
static long long cpu_ns(void) { struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec * 1000000000LL + t.tv_nsec; }
static const int FLAGS = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
static void die(const char *what) { perror(what); exit(1); }

/* What openLockFile + flock + sameFile + close do: open, fstat (regular file, ours), flock,
   fstat + lstat (identity), close. */
static void probe(const char *path) {
  int fd = open(path, FLAGS);
  if (fd < 0) die("open");
  struct stat st, named;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) die("fstat");
  if (flock(fd, LOCK_EX | LOCK_NB) != 0 && errno != EWOULDBLOCK) die("flock");
  if (fstat(fd, &st) != 0 || lstat(path, &named) != 0 || st.st_ino != named.st_ino || st.st_dev != named.st_dev) die("identity");
  close(fd);
}

/* What probeLock(domain) costs the kernel: open, flock(LOCK_SH|LOCK_NB), one fstat (regular, ours,
   one link: the path still names it), close. */
static void shprobe(const char *path) {
  int fd = open(path, FLAGS);
  if (fd < 0) die("open");
  struct stat st;
  if (flock(fd, LOCK_SH | LOCK_NB) != 0 && errno != EWOULDBLOCK) die("flock");
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || st.st_nlink != 1) die("fstat");
  close(fd);
}

static void *idle(void *arg) { (void)arg; for (;;) pause(); return NULL; }

int main(int argc, char **argv) {
  const char *mode = argv[1], *path = argv[2];
  /* "threaded": one idle extra thread, as every Node process has. The kernel takes a reference on
     the file for each fd lookup once the fd table is shared, which a single thread is spared. */
  if (argc > 5 && !strcmp(argv[5], "threaded")) { pthread_t t; pthread_create(&t, NULL, idle, NULL); }
  if (!strcmp(mode, "holder")) {            /* holds the lock until killed */
    int fd = open(path, FLAGS | O_CREAT, 0644);
    if (fd < 0 || flock(fd, LOCK_EX) != 0) die("holder");
    printf("HELD\n"); fflush(stdout);
    for (;;) pause();
  }
  if (!strcmp(mode, "waiter")) {           /* per stdin line: block for the lock, stamp, unlock */
    int fd = open(path, FLAGS);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
      if (flock(fd, LOCK_EX) != 0) die("flock");
      printf("%lld\n", now_ns()); fflush(stdout);
      flock(fd, LOCK_UN);
    }
    return 0;
  }
  long iterations = atol(argv[3]), rounds = atol(argv[4]);
  int fd = open(path, FLAGS);
  if (fd < 0) die("open");
  double best = 1e18;
  for (long r = 0; r < rounds; r++) {
    long long t0 = cpu_ns();
    for (long i = 0; i < iterations; i++) {
      if (!strcmp(mode, "tryunlock")) {
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) die("flock");
        flock(fd, LOCK_UN);
      } else if (!strcmp(mode, "busy")) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK) die("not busy");
      } else if (!strcmp(mode, "shprobe")) {
        shprobe(path);
      } else {
        probe(path);
      }
    }
    double ns = (double)(cpu_ns() - t0) / iterations;
    if (ns < best) best = ns;
  }
  printf("%.1f\n", best);
  return 0;
}
`;

interface PublicProbe {
  probe: (domain: string) => string;
  freeDomain: string;
  heldDomain: string;
  freePath: string;
  heldPath: string;
}

interface FsExt {
  flock(fd: number, op: string, cb: (error: Error | null) => void): void;
  flockSync(fd: number, op: string): void;
}

function loadFsExt(): { fsExt: FsExt | null; note: string } {
  try {
    const req = createRequire(join(DEPS, 'package.json'));
    return { fsExt: req('fs-ext') as FsExt, note: `fs-ext from ${DEPS}` };
  } catch (error) {
    return { fsExt: null, note: `fs-ext rows skipped: not installed in ${DEPS} (${(error as Error).message.split('\n')[0]})` };
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Lines of a child's stdout, one awaited at a time. */
function lineReader(child: ChildProcess): () => Promise<string> {
  const lines: string[] = [];
  const waiters: ((line: string) => void)[] = [];
  let pending = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    pending += chunk;
    const parts = pending.split('\n');
    pending = parts.pop()!;
    for (const line of parts) {
      const waiter = waiters.shift();
      if (waiter) waiter(line);
      else lines.push(line);
    }
  });
  return () => (lines.length > 0 ? Promise.resolve(lines.shift()!) : new Promise((resolve) => waiters.push(resolve)));
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

async function startHolder(bin: string, path: string): Promise<ChildProcess> {
  const holder = spawn(bin, ['holder', path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await lineReader(holder)();
  if (line !== 'HELD') throw new Error(`holder said ${line}`);
  return holder;
}

async function stopHolder(holder: ChildProcess): Promise<void> {
  holder.kill('SIGKILL');
  await exited(holder);
}

function queuedWaits(pid: number): number {
  return readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .filter((line) => line.includes('->') && line.includes(` ${pid} `)).length;
}

async function untilQueued(pid: number, count = 1): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (queuedWaits(pid) < count) {
    if (Date.now() > deadline) throw new Error(`pid ${pid} never queued ${count} wait(s)`);
    await new Promise((r) => setImmediate(r));
  }
}

/**
 * CPU nanoseconds per call of `fn` (user + system, this process), best of `rounds` runs. CPU time,
 * not wall time: on a shared machine other processes' time slices would otherwise land in one
 * side's figure and not the other's. The C program measures the same way.
 */
function cpuNsPerOp(fn: () => void, iterations: number, rounds: number): number {
  for (let i = 0; i < Math.min(iterations, 10_000); i++) fn(); // warm up the JIT
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t0 = process.cpuUsage();
    for (let i = 0; i < iterations; i++) fn();
    const used = process.cpuUsage(t0);
    best = Math.min(best, ((used.user + used.system) * 1000) / iterations);
  }
  return best;
}

// (a)-(c): best CPU ns/op of ours and C's, interleaved over many short rounds.
function hotPaths(
  bin: string,
  holderPath: string,
  freePath: string,
  publicProbe: PublicProbe,
): Record<'a' | 'aThreaded' | 'b' | 'cFree' | 'cHeld' | 'gFree' | 'gHeld', number[]> {
  const c = (mode: string, path: string, iterations: number, threaded = false) =>
    Number(execFileSync(bin, [mode, path, String(iterations), '2', ...(threaded ? ['threaded'] : [])], { encoding: 'utf8' }));
  const fd = openLockFile(freePath, false);
  const busyFd = openLockFile(holderPath, false);
  const probe = (path: string) => () => {
    const probeFd = openLockFile(path, false);
    flock(probeFd, LOCK_EX | LOCK_NB);
    if (!sameFile(probeFd, path)) throw new Error('identity');
    closeSync(probeFd);
  };
  const best = {
    a: [Infinity, Infinity],
    aThreaded: [Infinity, Infinity],
    b: [Infinity, Infinity],
    cFree: [Infinity, Infinity],
    cHeld: [Infinity, Infinity],
    gFree: [Infinity, Infinity],
    gHeld: [Infinity, Infinity],
  };
  const keep = (slot: number[], ours: number, theirs: number) => {
    slot[0] = Math.min(slot[0]!, ours);
    slot[1] = Math.min(slot[1]!, theirs);
  };
  // Many short interleaved measurements, keeping each side's best: on a shared machine some
  // land in quiet moments for both.
  for (let round = 0; round < HOT_ROUNDS; round++) {
    const roundTrip = cpuNsPerOp(
      () => {
        flock(fd, LOCK_EX | LOCK_NB);
        flock(fd, LOCK_UN);
      },
      30_000,
      2,
    );
    keep(best.a, roundTrip, c('tryunlock', freePath, 30_000));
    keep(best.aThreaded, roundTrip, c('tryunlock', freePath, 30_000, true));
    keep(
      best.b,
      cpuNsPerOp(() => flock(busyFd, LOCK_EX | LOCK_NB), 30_000, 2),
      c('busy', holderPath, 30_000),
    );
    keep(best.cFree, cpuNsPerOp(probe(freePath), 5_000, 2), c('probe', freePath, 5_000));
    keep(best.cHeld, cpuNsPerOp(probe(holderPath), 5_000, 2), c('probe', holderPath, 5_000));
    keep(
      best.gFree,
      cpuNsPerOp(() => publicProbe.probe(publicProbe.freeDomain), 5_000, 2),
      c('shprobe', publicProbe.freePath, 5_000),
    );
    keep(
      best.gHeld,
      cpuNsPerOp(() => publicProbe.probe(publicProbe.heldDomain), 5_000, 2),
      c('shprobe', publicProbe.heldPath, 5_000),
    );
  }
  closeSync(fd);
  closeSync(busyFd);
  return best;
}

function fsExtHotPaths(fsExt: FsExt, holderPath: string, freePath: string): { a: number; b: number } {
  const fd = openLockFile(freePath, false);
  const busyFd = openLockFile(holderPath, false);
  const a = cpuNsPerOp(
    () => {
      fsExt.flockSync(fd, 'exnb');
      fsExt.flockSync(fd, 'un');
    },
    30_000,
    6,
  );
  const b = cpuNsPerOp(
    () => {
      try {
        fsExt.flockSync(busyFd, 'exnb');
      } catch {
        // busy: fs-ext can only say so with an exception
      }
    },
    30_000,
    6,
  );
  closeSync(fd);
  closeSync(busyFd);
  return { a, b };
}

// (d): a long-lived waiter per implementation; each round a fresh holder is SIGKILLed once the
// waiter sits in the kernel's queue, and the waiter stamps CLOCK_MONOTONIC when it holds the lock.
interface Waiter {
  name: string;
  child: ChildProcess;
  next: () => Promise<string>;
  samples: number[];
}

function startWaiter(name: string, command: string, args: string[]): Waiter {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  return { name, child, next: lineReader(child), samples: [] };
}

const OUR_WAITER = `
import { createInterface } from 'node:readline';
const { flockWait, flock, openLockFile, LOCK_EX, LOCK_UN } = await import(process.argv[1]);
const fd = openLockFile(process.argv[2], false);
for await (const _ of createInterface({ input: process.stdin })) {
  await flockWait(fd, LOCK_EX);
  process.stdout.write(process.hrtime.bigint() + '\\n');
  flock(fd, LOCK_UN);
}`;

const FS_EXT_WAITER = `
const { createInterface } = require('node:readline');
const fsExt = require(require('node:module').createRequire(process.argv[1] + '/package.json').resolve('fs-ext'));
const fd = require('node:fs').openSync(process.argv[2], 'r');
createInterface({ input: process.stdin }).on('line', () =>
  fsExt.flock(fd, 'ex', () => {
    process.stdout.write(process.hrtime.bigint() + '\\n');
    fsExt.flockSync(fd, 'un');
  }));`;

async function wakeLatency(bin: string, path: string, withFsExt: boolean): Promise<Waiter[]> {
  writeFileSync(path, '');
  const waiters = [
    startWaiter('C', bin, ['waiter', path]),
    startWaiter('cc-ci', process.execPath, ['--input-type=module', '-e', OUR_WAITER, NATIVE, path]),
  ];
  if (withFsExt) waiters.push(startWaiter('fs-ext', process.execPath, ['-e', FS_EXT_WAITER, DEPS, path]));
  await sleep(300); // let the node waiters load
  for (let round = 0; round < WAKE_ROUNDS; round++) {
    for (let k = 0; k < waiters.length; k++) {
      const waiter = waiters[(round + k) % waiters.length]!; // rotate who goes first
      const holder = await startHolder(bin, path);
      waiter.child.stdin!.write('go\n');
      await untilQueued(waiter.child.pid!);
      const killedAt = process.hrtime.bigint();
      holder.kill('SIGKILL');
      const heldAt = BigInt(await waiter.next());
      waiter.samples.push(Number(heldAt - killedAt) / 1000);
      await exited(holder);
    }
  }
  for (const waiter of waiters) {
    waiter.child.stdin!.end();
    waiter.child.kill('SIGKILL');
    await exited(waiter.child);
  }
  return waiters;
}

// (e): fs.promises.stat latency in this process, alternating phases with none and 64 pending waits.
async function statLatency(bin: string, path: string): Promise<{ none: number; pending: number }> {
  const measure = async () => {
    const samples: number[] = [];
    for (let i = 0; i < 400; i++) {
      const t0 = process.hrtime.bigint();
      await fsp.stat(path);
      samples.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    return median(samples);
  };
  const holder = await startHolder(bin, path);
  const none: number[] = [];
  const pending: number[] = [];
  await measure(); // warm up
  for (let round = 0; round < 5; round++) {
    none.push(await measure());
    const controller = new AbortController();
    setMaxListeners(64, controller.signal);
    const fds = Array.from({ length: 64 }, () => openLockFile(path, false));
    const waits = fds.map((fd) => flockWait(fd, LOCK_EX, { signal: controller.signal }).catch(() => {}));
    await untilQueued(process.pid, 64);
    pending.push(await measure());
    controller.abort();
    await Promise.all(waits);
    for (const fd of fds) closeSync(fd);
  }
  await stopHolder(holder);
  return { none: median(none), pending: median(pending) };
}

/** Whether fs.stat completes at all in a process with 64 fs-ext waits pending (it cannot: they fill the pool). */
async function fsExtStatHangs(bin: string, path: string): Promise<boolean> {
  const holder = await startHolder(bin, path);
  const script = `
    const fsExt = require(require('node:module').createRequire(process.argv[1] + '/package.json').resolve('fs-ext'));
    const fs = require('node:fs');
    for (let i = 0; i < 64; i++) fsExt.flock(fs.openSync(process.argv[2], 'r'), 'ex', () => {});
    setTimeout(() => fs.stat(process.argv[2], () => console.log('STAT')), 100);`;
  const child = spawn(process.execPath, ['-e', script, DEPS, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await Promise.race([lineReader(child)(), sleep(HANG_MS).then(() => 'HUNG')]);
  child.kill('SIGKILL');
  await exited(child);
  await stopHolder(holder);
  return line === 'HUNG';
}

// (f): a child sets up its waits (or none), then stamps the clock and calls process.exit(); the
// figure is the time until this process sees it exit.
const EXIT_CHILD = `
const [native, path, kind, count] = process.argv.slice(1);
const fs = require('node:fs');
const queued = () => fs.readFileSync('/proc/locks', 'utf8').split('\\n').filter((l) => l.includes('->') && l.includes(' ' + process.pid + ' ')).length;
(async () => {
  if (kind === 'ours') {
    const { flockWait, openLockFile, LOCK_EX } = await import(native);
    for (let i = 0; i < Number(count); i++) flockWait(openLockFile(path, false), LOCK_EX).catch(() => {});
  } else if (kind === 'fs-ext') {
    const fsExt = require(require('node:module').createRequire(process.env.BENCH_DEPS_DIR + '/package.json').resolve('fs-ext'));
    for (let i = 0; i < Number(count); i++) fsExt.flock(fs.openSync(path, 'r'), 'ex', () => {});
  }
  while (queued() < Number(count)) await new Promise((r) => setTimeout(r, 1));
  process.stdout.write(process.hrtime.bigint() + '\\n');
  process.exit(0);
})();`;

async function exitTime(path: string, kind: string, count: number): Promise<number> {
  const child = spawn(process.execPath, ['-e', EXIT_CHILD, NATIVE, path, kind, String(count)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, BENCH_DEPS_DIR: DEPS },
  });
  const stamp = BigInt(await lineReader(child)());
  const ended = await Promise.race([exited(child).then(() => process.hrtime.bigint()), sleep(HANG_MS).then(() => null)]);
  if (ended === null) {
    child.kill('SIGKILL');
    await exited(child);
    return Infinity;
  }
  return Number(ended - stamp) / 1000;
}

async function exitTimes(bin: string, path: string, withFsExt: boolean): Promise<Record<string, number>> {
  const holder = await startHolder(bin, path);
  const kinds: [string, string, number][] = [
    ['none', 'none', 0],
    ['one', 'ours', 1],
    ['sixty-four', 'ours', 64],
  ];
  const samples: Record<string, number[]> = Object.fromEntries(kinds.map(([name]) => [name, []]));
  for (let round = 0; round < EXIT_ROUNDS; round++) {
    for (const [name, kind, count] of kinds) samples[name]!.push(await exitTime(path, kind, count));
  }
  const result: Record<string, number> = Object.fromEntries(kinds.map(([name]) => [name, median(samples[name]!)]));
  if (withFsExt) result.fsExt = await exitTime(path, 'fs-ext', 1);
  await stopHolder(holder);
  return result;
}

export default async function lockBench(): Promise<boolean> {
  const bin = compileC('lock-bench', C_SOURCE);
  const dir = scratchDir('lock');
  const freePath = join(dir, 'free.lock');
  const heldPath = join(dir, 'held.lock');
  writeFileSync(freePath, '');
  const { fsExt, note } = loadFsExt();

  // (g) goes through the public API: the lock dir from CCCI_APP_LOCK_DIR, the domain validated.
  process.env.CCCI_APP_LOCK_DIR = dir;
  const publicProbe: PublicProbe = {
    probe: probeLock,
    freeDomain: 'bfre-000001.bench.test',
    heldDomain: 'bhel-000002.bench.test',
    freePath: join(dir, 'cc-ci-app-bfre-000001.bench.test.lock'),
    heldPath: join(dir, 'cc-ci-app-bhel-000002.bench.test.lock'),
  };
  writeFileSync(publicProbe.freePath, '');
  const holder = await startHolder(bin, heldPath);
  const publicHolder = await startHolder(bin, publicProbe.heldPath);
  if (probeLock(publicProbe.freeDomain) !== 'free' || probeLock(publicProbe.heldDomain) !== 'held')
    throw new Error('(g): probeLock does not see the bench locks');
  const hot = hotPaths(bin, heldPath, freePath, publicProbe);
  await stopHolder(publicHolder);
  const fsExtHot = fsExt ? fsExtHotPaths(fsExt, heldPath, freePath) : null;
  await stopHolder(holder);

  const waiters = await wakeLatency(bin, join(dir, 'wake.lock'), fsExt !== null);
  const wake = Object.fromEntries(waiters.map((w) => [w.name, median(w.samples)]));
  const stat = await statLatency(bin, join(dir, 'stat.lock'));
  const statHangs = fsExt ? await fsExtStatHangs(bin, join(dir, 'stat-fsext.lock')) : null;
  const exit = await exitTimes(bin, join(dir, 'exit.lock'), fsExt !== null);

  const rows: Row[] = [
    { case: '(a) try-lock + unlock, open fd', ours: hot.a[0]!, baseline: hot.a[1]!, unit: 'ns', baselineName: 'C', target: 1.3 },
    {
      case: '(a) the same, against C with one idle extra thread',
      ours: hot.aThreaded[0]!,
      baseline: hot.aThreaded[1]!,
      unit: 'ns',
      baselineName: 'C, 2 threads',
    },
    {
      case: '(b) try-lock, busy (held by another process)',
      ours: hot.b[0]!,
      baseline: hot.b[1]!,
      unit: 'ns',
      baselineName: 'C',
      target: 2,
    },
    { case: '(c) probe cycle, free', ours: hot.cFree[0]!, baseline: hot.cFree[1]!, unit: 'ns', baselineName: 'C', target: 1.5 },
    { case: '(c) probe cycle, held', ours: hot.cHeld[0]!, baseline: hot.cHeld[1]!, unit: 'ns', baselineName: 'C', target: 1.5 },
    {
      case: '(g) public probeLock(domain), free',
      ours: hot.gFree[0]!,
      baseline: hot.gFree[1]!,
      unit: 'ns',
      baselineName: 'C',
      target: 1.5,
    },
    {
      case: '(g) public probeLock(domain), held',
      ours: hot.gHeld[0]!,
      baseline: hot.gHeld[1]!,
      unit: 'ns',
      baselineName: 'C',
      target: 1.5,
    },
    {
      case: `(d) wake latency, median of ${WAKE_ROUNDS}`,
      ours: wake['cc-ci']!,
      baseline: wake.C!,
      unit: 'µs',
      baselineName: 'C waiter',
      target: 1.3,
    },
    {
      case: '(e) fs.stat latency, 64 waits pending',
      ours: stat.pending,
      baseline: stat.none,
      unit: 'µs',
      baselineName: 'none pending',
      target: 2,
    },
    {
      case: `(f) process.exit(), 1 wait pending, median of ${EXIT_ROUNDS}`,
      ours: exit.one!,
      baseline: exit.none!,
      unit: 'µs',
      baselineName: 'none pending',
      target: 1.5,
    },
    {
      case: '(f) process.exit(), 64 waits pending',
      ours: exit['sixty-four']!,
      baseline: exit.none!,
      unit: 'µs',
      baselineName: 'none pending',
    },
  ];
  if (fsExt && fsExtHot) {
    rows.push(
      { case: '(a) fs-ext flockSync exnb + un', ours: fsExtHot.a, baseline: hot.a[1]!, unit: 'ns', baselineName: 'C' },
      { case: '(b) fs-ext flockSync exnb, busy (throws)', ours: fsExtHot.b, baseline: hot.b[1]!, unit: 'ns', baselineName: 'C' },
      { case: `(d) fs-ext flock 'ex' (libuv pool)`, ours: wake['fs-ext']!, baseline: wake.C!, unit: 'µs', baselineName: 'C waiter' },
    );
  }
  const ok = printTable('lock: cc-ci addon against C (same system calls, same run; (a)-(c) in CPU time)', rows);
  console.log(
    `\nwake latency spread (µs, p10 / p50 / p90): ${waiters
      .map((w) => {
        const s = [...w.samples].sort((x, y) => x - y);
        const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!.toFixed(0);
        return `${w.name} ${at(0.1)} / ${at(0.5)} / ${at(0.9)}`;
      })
      .join('; ')}`,
  );
  console.log(`fs-ext: ${note}`);
  if (fsExt) {
    console.log(
      `(e) fs-ext: with 64 flock waits pending, fs.stat ${statHangs ? `never completed (killed after ${HANG_MS} ms): the waits fill libuv's pool` : 'completed'}`,
    );
    console.log(
      `(f) fs-ext: process.exit() with one flock wait pending ${exit.fsExt === Infinity ? `never ended (killed after ${HANG_MS} ms): exit joins the pool thread stuck in flock(2)` : `took ${exit.fsExt!.toFixed(0)} µs`}`,
    );
  }
  console.log(
    'fs-native-extensions: not compared: on Linux it locks with fcntl(F_OFD_SETLK), a different lock that neither sees nor blocks flock(2) locks (so it cannot interoperate with flock(1) or the Python runner).',
  );
  return ok;
}

// Run directly too: `node --import tsx bench/lock.bench.ts`.
if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = (await lockBench()) ? 0 : 1;
