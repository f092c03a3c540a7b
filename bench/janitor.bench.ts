// `npm run bench janitor`: one janitor sweep over N candidates (N = 10, 100, 1000, 10000), half of
// them held by ONE helper process holding many locks, half orphans (lockfiles recreated between
// sweeps, teardown a no-op), timed per candidate against the same sweep as a C loop and as the
// Python runner's plain loop (`open(path, "a")` + `fcntl.flock` + fstat/stat, unlink for orphans,
// then its glob tidy), all in this run, on the same files, interleaved so they share the load.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { janitor } from '../lib/janitor.js';
import { compileC, median, printTable, scratchDir, type Row } from './support.js';

const SIZES = (process.env.BENCH_JANITOR_SIZES ?? "10,100,1000,10000").split(",").map(Number);
const ROUNDS = 3;
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

static void sweep(char **sorted) {
  char path[4096]; struct stat held, named;
  time_t limit = time(NULL) - ${LONG_HELD_MS / 1000};
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/cc-ci-app-%s.lock", dir, names[i]);
    int fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
    if (fd < 0) continue;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (fstat(fd, &held) == 0 && held.st_mtime < limit) fprintf(stderr, "long held %s\n", names[i]);
    } else if (fstat(fd, &held) == 0 && stat(path, &named) == 0 && held.st_dev == named.st_dev && held.st_ino == named.st_ino) {
      unlink(path);
    }
    close(fd);
  }
  DIR *d = opendir(dir); struct dirent *e;
  while (d && (e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (len <= 15 || strncmp(e->d_name, "cc-ci-app-", 10) || strcmp(e->d_name + len - 5, ".lock")) continue;
    char domain[4096]; memcpy(domain, e->d_name + 10, len - 15); domain[len - 15] = 0;
    char *key = domain;
    if (bsearch(&key, sorted, n, sizeof *sorted, cmp)) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) continue;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &held) == 0 && stat(path, &named) == 0 && held.st_ino == named.st_ino) unlink(path);
    close(fd);
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
    if (r >= 0) printf("%s%.1f", r ? "," : "", t);
  }
  printf("]\n");
  return 0;
}
`;

// The Python runner's janitor loop, minus its logging and teardown.
const PY_SWEEP = String.raw`
import fcntl, glob, json, os, sys, time
lock_dir, listing, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
entries = [line.split(" ", 1) for line in open(listing).read().splitlines()]
seen = [name for _, name in entries]
orphans = [f"{lock_dir}/cc-ci-app-{name}.lock" for kind, name in entries if kind == "O"]
LONG_HELD = ${LONG_HELD_MS / 1000}

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
    seen_set = set(seen)
    for name in seen:
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

samples = []
for r in range(-1, reps):
    for path in orphans:
        open(path, "w").close()
    t0 = time.perf_counter_ns()
    sweep()
    if r >= 0:
        samples.append((time.perf_counter_ns() - t0) / len(seen))
print(json.dumps(samples))
`;

interface Case {
  n: number;
  dir: string;
  listing: string;
  candidates: string[];
  orphanPaths: string[];
  reps: number;
}

// Production lock dirs are tmpfs (/run/lock); bench on tmpfs too when the machine has one.
function lockRoot(): string {
  if (!existsSync('/dev/shm')) return scratchDir('janitor-locks');
  const dir = mkdtempSync('/dev/shm/ccci-bench-janitor-');
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function makeCase(root: string, n: number): Case & { heldPaths: string[] } {
  const dir = join(root, `n${n}`);
  mkdirSync(dir);
  const lines: string[] = [];
  const candidates: string[] = [];
  const orphanPaths: string[] = [];
  const heldPaths: string[] = [];
  for (let i = 0; i < n; i++) {
    const held = i % 2 === 0;
    const domain = `${held ? 'bh' : 'bo'}-${i.toString(16).padStart(6, '0')}.${BASE}`;
    const path = join(dir, `cc-ci-app-${domain}.lock`);
    candidates.push(domain);
    lines.push(`${held ? 'H' : 'O'} ${domain}`);
    (held ? heldPaths : orphanPaths).push(path);
  }
  const listing = join(dir, '..', `n${n}.list`);
  writeFileSync(listing, `${lines.join('\n')}\n`);
  const reps = Math.max(5, Math.min(200, Math.round(20_000 / n)));
  return { n, dir, listing, candidates, orphanPaths, heldPaths, reps };
}

async function jsSamples(c: Case): Promise<number[]> {
  process.env.CCCI_APP_LOCK_DIR = c.dir;
  process.env.CCCI_BASE_DOMAIN = BASE;
  const noop = (): void => {};
  const hooks = { discover: () => c.candidates, teardown: noop, log: noop, deadlineSeconds: 3600 };
  const samples: number[] = [];
  for (let r = -1; r < c.reps; r++) {
    for (const path of c.orphanPaths) closeSync(openSync(path, 'w'));
    const t0 = process.hrtime.bigint();
    const report = await janitor(hooks);
    const ns = Number(process.hrtime.bigint() - t0) / c.n;
    if (report.reaped.length !== c.n / 2 || report.live.length !== c.n / 2) {
      throw new Error(`janitor bench: expected ${c.n / 2} reaped and live, got ${report.reaped.length} and ${report.live.length}`);
    }
    if (r >= 0) samples.push(ns);
  }
  return samples;
}

function childSamples(command: string, args: string[]): number[] {
  return JSON.parse(execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })) as number[];
}

export default async function bench(): Promise<boolean> {
  const cSweep = compileC('janitor-sweep', C_SWEEP);
  const pySweep = join(scratchDir('janitor-py'), 'sweep.py');
  writeFileSync(pySweep, PY_SWEEP);

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

    const perCandidate = new Map<number, { js: number; c: number; py: number }>();
    for (const c of cases) {
      const js: number[] = [];
      const cl: number[] = [];
      const py: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        js.push(...(await jsSamples(c)));
        cl.push(...childSamples(cSweep, [c.dir, c.listing, String(c.reps)]));
        py.push(...childSamples('python3', [pySweep, c.dir, c.listing, String(c.reps)]));
      }
      perCandidate.set(c.n, { js: median(js), c: median(cl), py: median(py) });
    }

    const us = (ns: number): number => ns / 1000;
    const rows: Row[] = [];
    for (const { n } of cases) {
      const m = perCandidate.get(n)!;
      const at1000 = n === 1000;
      rows.push({ case: `N=${n} per candidate`, ours: us(m.js), baseline: us(m.c), unit: 'µs', baselineName: 'C loop', target: at1000 ? 1.5 : undefined });
      rows.push({ case: `N=${n} per candidate`, ours: us(m.js), baseline: us(m.py), unit: 'µs', baselineName: 'Python loop', target: at1000 ? 0.5 : undefined });
    }
    const first = perCandidate.get(SIZES[0]!)!.js;
    const last = perCandidate.get(SIZES[SIZES.length - 1]!)!.js;
    rows.push({ case: `linearity: per candidate at N=${SIZES.at(-1)} vs N=${SIZES[0]}`, ours: us(last), baseline: us(first), unit: 'µs', baselineName: `cc-ci at N=${SIZES[0]}`, target: 1.5 });
    return printTable('janitor sweep (half held by one process, half orphans; no-op teardown; tmpfs lock dir)', rows);
  } finally {
    killHolder();
    delete process.env.CCCI_APP_LOCK_DIR;
  }
}
