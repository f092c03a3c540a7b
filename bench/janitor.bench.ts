// `npm run bench janitor`: one janitor sweep over N candidates (N = 10, 100, 1000, 10000), half of
// them held by ONE helper process holding many locks, half orphans (lockfiles recreated between
// sweeps, teardown a no-op), timed per candidate against the same sweep as a C loop and as the
// Python runner's plain loop (`open(path, "a")` + `fcntl.flock` + fstat/stat, unlink for orphans,
// then its glob tidy), all in this run, on the same files, interleaved so they share the load.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { compileC, median, printTable, scratchDir, type Row } from './support.js';

const SIZES = (process.env.BENCH_JANITOR_SIZES ?? '10,100,1000,10000').split(',').map(Number);
const ROUNDS = 9;
const BASE = 'ci.commoninternet.net';
const LONG_HELD_MS = 2 * 3600 * 1000;

const C_SWEEP = String.raw`
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[4096];
static char **names; static char *kinds; static int n;
static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }

// cc-ci's probe: open, flock, one fstat (checks the file, reads its mtime and link count), and
// only for an inode with several links an lstat; an orphan's lockfile is unlinked before the close.
static int probe(const char *path, time_t limit, const char *name) {
  struct stat st, named;
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return -1;
  int busy = flock(fd, LOCK_EX | LOCK_NB) != 0;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) { close(fd); return -1; }
  if (busy) {
    if (name && st.st_mtime < limit) fprintf(stderr, "long held %s\n", name);
    close(fd);
    return -1;
  }
  if (st.st_nlink == 1 || (st.st_nlink > 1 && lstat(path, &named) == 0 && named.st_dev == st.st_dev && named.st_ino == st.st_ino)) return fd;
  close(fd);
  return -1;
}

static void sweep(char **sorted) {
  char path[4096];
  time_t limit = time(NULL) - ${LONG_HELD_MS / 1000};
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/cc-ci-app-%s.lock", dir, names[i]);
    int fd = probe(path, limit, names[i]);
    if (fd >= 0) { unlink(path); close(fd); }
  }
  DIR *d = opendir(dir); struct dirent *e;
  while (d && (e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (len <= 15 || strncmp(e->d_name, "cc-ci-app-", 10) || strcmp(e->d_name + len - 5, ".lock")) continue;
    char domain[4096]; memcpy(domain, e->d_name + 10, len - 15); domain[len - 15] = 0;
    char *key = domain;
    if (bsearch(&key, sorted, n, sizeof *sorted, cmp)) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    int fd = probe(path, limit, NULL);
    if (fd >= 0) { unlink(path); close(fd); }
  }
  if (d) closedir(d);
}

int main(int argc, char **argv) {
  snprintf(dir, sizeof dir, "%s", argv[1]);
  int reps = atoi(argv[3]);
  FILE *f = fopen(argv[2], "r"); char line[4096];
  names = malloc(sizeof *names * 20000); kinds = malloc(20000);
  while (fgets(line, sizeof line, f)) { line[strcspn(line, "\n")] = 0; kinds[n] = line[0]; names[n++] = strdup(line + 2); }
  fclose(f);
  char **sorted = malloc(sizeof *sorted * n); memcpy(sorted, names, sizeof *sorted * n); qsort(sorted, n, sizeof *sorted, cmp);
  char path[4096];
  printf("[");
  for (int r = -1; r < reps; r++) {
    for (int i = 0; i < n; i++) if (kinds[i] == 'O') { snprintf(path, sizeof path, "%s/cc-ci-app-%s.lock", dir, names[i]); close(open(path, O_WRONLY | O_CREAT, 0644)); }
    double t0 = now(); sweep(sorted); double t = (now() - t0) / n;
    for (int i = 0; i < n; i++) if (kinds[i] == 'O') {
      snprintf(path, sizeof path, "%s/cc-ci-app-%s.lock", dir, names[i]);
      if (access(path, F_OK) == 0) { fprintf(stderr, "janitor bench: the C sweep left an orphan's lockfile\n"); return 1; }
    }
    if (r >= 0) printf("%s%.1f", r ? "," : "", t);
  }
  printf("]\n");
  return 0;
}
`;

// What both Python sweeps share: the arguments and the listing (the same as the C loop's), and
// the timed loop, which recreates the orphans' lockfiles before each sweep and checks them gone
// after it.
const PY_SETUP = `import fcntl, glob, json, os, sys, time
lock_dir, listing, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
entries = [line.split(" ", 1) for line in open(listing).read().splitlines()]
names = [name for _, name in entries]
orphans = [f"{lock_dir}/cc-ci-app-{name}.lock" for kind, name in entries if kind == "O"]
`;
const PY_SAMPLES = `
samples = []
for r in range(-1, reps):
    for path in orphans:
        open(path, "w").close()
    t0 = time.perf_counter_ns()
    sweep()
    elapsed = time.perf_counter_ns() - t0
    if any(os.path.exists(path) for path in orphans):
        sys.exit("janitor bench: the Python sweep left an orphan's lockfile")
    if r >= 0:
        samples.append(elapsed / len(names))
print(json.dumps(samples))
`;

// The Python runner's janitor, line for line, with its print() and teardown_app() swapped for
// no-ops, just as the cc-ci side gets a no-op log and teardown: the same work minus the I/O. Its
// discovery is the candidate list matched against RUN_APP_RE, as cc-ci matches its run-app pattern.
const PY_RUNNER_SWEEP = String.raw`
${PY_SETUP}import contextlib, re
os.environ["CCCI_APP_LOCK_DIR"] = lock_dir
RUN_APP_RE = re.compile(r"^[a-z0-9]{1,4}-[0-9a-f]{6}\.ci\.commoninternet\.net$")
LONG_HELD_LOCK_SECONDS = ${LONG_HELD_MS / 1000}

def log(*args, **kwargs):
    pass

def teardown_app(domain, verify=True):
    pass

def _app_lock_dir():
    return os.environ.get("CCCI_APP_LOCK_DIR", "/run/lock")

def _app_lock_path(domain):
    return os.path.join(_app_lock_dir(), f"cc-ci-app-{domain}.lock")

def _probe_and_reap(domain):
    path = _app_lock_path(domain)
    try:
        f = open(path, "a")
    except OSError as e:
        log(f"!! janitor: cannot open lockfile {path} ({e}) — skipping {domain}", flush=True)
        return
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                held_for = time.time() - os.stat(path).st_mtime
            except OSError:
                held_for = 0
            if held_for > LONG_HELD_LOCK_SECONDS:
                log(f"!! lock for {domain} held >{LONG_HELD_LOCK_SECONDS // 60}min — possible leaked run; inspect with lslocks", flush=True)
            else:
                log(f"   janitor: {domain} lock held — live concurrent run, leaving it", flush=True)
            return
        try:
            if os.fstat(f.fileno()).st_ino != os.stat(path).st_ino:
                return
        except FileNotFoundError:
            return
        log(f"   janitor: {domain} lock acquirable — orphan, reaping", flush=True)
        with contextlib.suppress(Exception):
            teardown_app(domain, verify=False)
        with contextlib.suppress(OSError):
            os.unlink(path)
    finally:
        f.close()

def sweep():
    seen = set()
    for name in names:
        if RUN_APP_RE.match(name):
            seen.add(name)
    for name in seen:
        _probe_and_reap(name)
    with contextlib.suppress(OSError):
        for path in glob.glob(os.path.join(_app_lock_dir(), "cc-ci-app-*.lock")):
            domain = os.path.basename(path)[len("cc-ci-app-") : -len(".lock")]
            if domain in seen:
                continue
            with contextlib.suppress(OSError):
                f = open(path, "a")
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    if os.fstat(f.fileno()).st_ino == os.stat(path).st_ino:
                        os.unlink(path)
                except (BlockingIOError, FileNotFoundError):
                    pass
                finally:
                    f.close()

${PY_SAMPLES}`;

// The bare system-call loop of the Python runner's probe, without the runner's own code around it
// (path building, log lines, teardown call): shown for context, no target.
const PY_BARE_SWEEP = `
${PY_SETUP}LONG_HELD = ${LONG_HELD_MS / 1000}

def probe_and_reap(domain):
    path = f"{lock_dir}/cc-ci-app-{domain}.lock"
    try:
        f = open(path, "a")
    except OSError:
        return
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                held_for = time.time() - os.stat(path).st_mtime
            except OSError:
                held_for = 0
            if held_for > LONG_HELD:
                print("long held", domain, file=sys.stderr)
            return
        try:
            if os.fstat(f.fileno()).st_ino != os.stat(path).st_ino:
                return
        except FileNotFoundError:
            return
        try:
            os.unlink(path)
        except OSError:
            pass
    finally:
        f.close()

def sweep():
    seen_set = set(names)
    for name in names:
        probe_and_reap(name)
    for path in glob.glob(os.path.join(lock_dir, "cc-ci-app-*.lock")):
        domain = os.path.basename(path)[len("cc-ci-app-"):-len(".lock")]
        if domain in seen_set:
            continue
        try:
            f = open(path, "a")
        except OSError:
            continue
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(f.fileno()).st_ino == os.stat(path).st_ino:
                os.unlink(path)
        except (BlockingIOError, FileNotFoundError):
            pass
        finally:
            f.close()

${PY_SAMPLES}`;

interface Case {
  n: number;
  dir: string;
  /** One line per candidate, `H <domain>` (held) or `O <domain>` (orphan): what all three sweeps read. */
  listing: string;
  heldPaths: string[];
  reps: number;
}

// Production lock dirs are tmpfs (/run/lock); bench on tmpfs too when the machine has one.
function lockRoot(): string {
  if (!existsSync('/dev/shm')) return scratchDir('janitor-locks');
  const dir = mkdtempSync('/dev/shm/ccci-bench-janitor-');
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function makeCase(root: string, n: number): Case {
  const dir = join(root, `n${n}`);
  mkdirSync(dir);
  const lines: string[] = [];
  const heldPaths: string[] = [];
  for (let i = 0; i < n; i++) {
    const held = i % 2 === 0;
    const domain = `${held ? 'bh' : 'bo'}-${i.toString(16).padStart(6, '0')}.${BASE}`;
    lines.push(`${held ? 'H' : 'O'} ${domain}`);
    if (held) heldPaths.push(join(dir, `cc-ci-app-${domain}.lock`));
  }
  const listing = join(dir, '..', `n${n}.list`);
  writeFileSync(listing, `${lines.join('\n')}\n`);
  const reps = Math.max(5, Math.min(200, Math.round(20_000 / n)));
  return { n, dir, listing, heldPaths, reps };
}

function childSamples(command: string, args: string[]): number[] {
  return JSON.parse(execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })) as number[];
}

export default async function bench(): Promise<boolean> {
  const cSweep = compileC('janitor-sweep', C_SWEEP);
  const sweepScript = fileURLToPath(new URL('./janitor-sweep.mjs', import.meta.url));
  const pyRunner = join(scratchDir('janitor-py'), 'runner.py');
  writeFileSync(pyRunner, PY_RUNNER_SWEEP);
  const pyBare = join(scratchDir('janitor-py'), 'bare.py');
  writeFileSync(pyBare, PY_BARE_SWEEP);

  const root = lockRoot();
  const cases = SIZES.map((n) => makeCase(root, n));
  const heldList = join(root, 'held.list');
  writeFileSync(heldList, `${cases.flatMap((c) => c.heldPaths).join('\n')}\n`);

  const helperPath = fileURLToPath(new URL('../tests/helpers/janitor-hold-many.mjs', import.meta.url));
  const holder = spawn(process.execPath, [helperPath, heldList], { stdio: ['ignore', 'pipe', 'inherit'] });
  const killHolder = (): void => {
    holder.kill('SIGKILL');
  };
  process.on('exit', killHolder);
  try {
    await new Promise<void>((resolve, reject) => {
      holder.stdout.setEncoding('utf8').on('data', (chunk: string) => chunk.includes('HELD') && resolve());
      holder.on('exit', (code) => reject(new Error(`lock holder exited (${code}) before holding its locks`)));
    });

    const perCandidate = new Map<number, { js: number; c: number; py: number; pyBare: number }>();
    for (const c of cases) {
      const js: number[] = [];
      const cl: number[] = [];
      const py: number[] = [];
      const pyBareSamples: number[] = [];
      const args = [c.dir, c.listing, String(c.reps)];
      for (let round = 0; round < ROUNDS; round++) {
        js.push(...childSamples(process.execPath, [sweepScript, ...args]));
        cl.push(...childSamples(cSweep, args));
        py.push(...childSamples('python3', [pyRunner, ...args]));
        pyBareSamples.push(...childSamples('python3', [pyBare, ...args]));
      }
      perCandidate.set(c.n, { js: median(js), c: median(cl), py: median(py), pyBare: median(pyBareSamples) });
    }

    const us = (ns: number): number => ns / 1000;
    const rows: Row[] = [];
    for (const { n } of cases) {
      const m = perCandidate.get(n)!;
      const at1000 = n === 1000;
      rows.push({
        case: `N=${n} per candidate`,
        ours: us(m.js),
        baseline: us(m.c),
        unit: 'µs',
        baselineName: 'C loop',
        target: at1000 ? 1.5 : undefined,
      });
      rows.push({
        case: `N=${n} per candidate`,
        ours: us(m.js),
        baseline: us(m.py),
        unit: 'µs',
        baselineName: "Python runner's loop",
        target: at1000 ? 0.5 : undefined,
      });
      rows.push({
        case: `N=${n} per candidate`,
        ours: us(m.js),
        baseline: us(m.pyBare),
        unit: 'µs',
        baselineName: 'bare Python syscall loop',
      });
    }
    const first = perCandidate.get(SIZES[0]!)!.js;
    const last = perCandidate.get(SIZES[SIZES.length - 1]!)!.js;
    rows.push({
      case: `linearity: per candidate at N=${SIZES.at(-1)} vs N=${SIZES[0]}`,
      ours: us(last),
      baseline: us(first),
      unit: 'µs',
      baselineName: `cc-ci at N=${SIZES[0]}`,
      target: 1.5,
    });
    return printTable('janitor sweep (half held by one process, half orphans; no-op teardown; tmpfs lock dir)', rows);
  } finally {
    killHolder();
  }
}
