// Parent death → teardown: from the SIGKILL of a guarded child's parent to the child's teardown,
// as seen by this process on the child's stdout. Three children, each armed with
// PR_SET_PDEATHSIG(SIGTERM) and a SIGTERM handler, under the same parent (sh), measured
// interleaved in the same run:
//   cc-ci   installLifetimeGuards() + an onTeardown step (the real library, through the event loop)
//   C       prctl + a sigaction handler that writes the marker (the floor)
//   Python  the same through ctypes and signal.signal (what cc-ci replaces)
// For cc-ci two points are timed: the funnel's `== SIGTERM received — tearing down ==` line (the
// counterpart of the C and Python handlers' marker) and its first teardown step, which runs once
// main has unwound (as the Python runner's `finally:` did after its handler raised SystemExit).
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { compileC, median, printTable, scratchDir, type Row } from './support.js';

const WARMUP = 3;
const ROUNDS = 51;
const TIMEOUT_MS = 5_000;
const SETTLE_MS = 50;

const C_CHILD = `
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

static void on_term(int sig) {
  (void)sig;
  static const char marker[] = "TEARDOWN\\n";
  (void)!write(1, marker, sizeof marker - 1);
  _exit(143);
}

int main(void) {
  struct sigaction action = {0};
  action.sa_handler = on_term;
  sigaction(SIGTERM, &action, 0);
  if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() == 1) return 1;
  static const char ready[] = "READY\\n";
  (void)!write(1, ready, sizeof ready - 1);
  for (;;) pause();
}
`;

const PYTHON_CHILD = `
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1
def on_term(signum, frame):
    os.write(1, b"TEARDOWN\\n")
    os._exit(143)
signal.signal(signal.SIGTERM, on_term)
if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0 or os.getppid() == 1:
    sys.exit(1)
os.write(1, b"READY\\n")
while True:
    signal.pause()
`;

const nodeChild = (lifetimeUrl: string): string => `
import { writeSync } from 'node:fs';
import { installLifetimeGuards } from ${JSON.stringify(lifetimeUrl)};
const lifetime = installLifetimeGuards({ log: (line) => writeSync(1, line + '\\n') });
lifetime.onTeardown(() => writeSync(1, 'TEARDOWN\\n'));
writeSync(1, 'READY\\n');
// A main that, like the runner's, listens to the run's signal.
await lifetime.run((signal) => new Promise((_, reject) => {
  setInterval(() => {}, 1 << 30);
  signal.addEventListener('abort', () => reject(signal.reason));
}));
`;

interface Round {
  /** µs from the kill to the `tearing down` line (cc-ci only). */
  funnelUs?: number;
  /** µs from the kill to the TEARDOWN marker. */
  teardownUs: number;
}

/** One round: start `child` under sh, wait for READY (+50 ms), SIGKILL sh, time the markers. */
function parentDeathToTeardown(child: readonly string[]): Promise<Round> {
  const env = { ...process.env };
  delete env.CCCI_EXPECTED_PPID; // the child's parent is sh, not whoever ran the bench
  // `& wait`: sh forks the child and stays its parent (no exec), as a CI step shell would.
  const parent = spawn('sh', ['-c', '"$@" & wait', 'sh', ...child], { detached: true, stdio: ['ignore', 'pipe', 'ignore'], env });
  return new Promise<Round>((resolve, reject) => {
    let seen = '';
    let settling: NodeJS.Timeout | undefined;
    let killedAt: bigint | undefined;
    let funnelUs: number | undefined;
    let teardownUs: number | undefined;
    const timer = setTimeout(() => {
      try {
        process.kill(-parent.pid!, 'SIGKILL'); // the child is still in sh's process group
      } catch {
        // gone
      }
      reject(new Error(`${child.join(' ')}: no ${killedAt === undefined ? 'READY' : 'TEARDOWN'} within ${TIMEOUT_MS} ms; output: ${seen}`));
    }, TIMEOUT_MS);
    parent.stdout.setEncoding('utf8');
    parent.stdout.on('data', (chunk: string) => {
      const now = process.hrtime.bigint();
      seen += chunk;
      if (!settling && seen.includes('READY\n')) {
        // A settled child, as any real run is by the time it is cancelled: all three alike.
        settling = setTimeout(() => {
          killedAt = process.hrtime.bigint();
          parent.kill('SIGKILL');
        }, SETTLE_MS);
      }
      if (killedAt !== undefined && funnelUs === undefined && seen.includes('tearing down ==\n')) {
        funnelUs = Number(now - killedAt) / 1000;
      }
      if (killedAt !== undefined && teardownUs === undefined && seen.includes('TEARDOWN\n')) {
        teardownUs = Number(now - killedAt) / 1000;
      }
    });
    // Every writer of the pipe is gone: sh and the child have both exited.
    parent.stdout.on('close', () => {
      clearTimeout(timer);
      if (teardownUs === undefined) reject(new Error(`${child.join(' ')} exited without a teardown; output: ${seen}`));
      else resolve({ funnelUs, teardownUs });
    });
  });
}

export default async function lifetimeBench(): Promise<boolean> {
  const dir = scratchDir('lifetime');
  const root = fileURLToPath(new URL('..', import.meta.url));
  const nodeScript = join(dir, 'guarded-child.mjs');
  writeFileSync(nodeScript, nodeChild(pathToFileURL(join(root, 'dist', 'lib', 'lifetime.js')).href));
  const pyScript = join(dir, 'guarded-child.py');
  writeFileSync(pyScript, PYTHON_CHILD);
  // The interpreter itself, not a version-manager shim that would start a shell first.
  const python = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();

  const kinds = {
    'cc-ci': [process.execPath, nodeScript],
    C: [compileC('lifetime-child', C_CHILD)],
    Python: [python, pyScript],
  } as const;
  const samples: Record<keyof typeof kinds, number[]> = { 'cc-ci': [], C: [], Python: [] };
  const funnel: number[] = [];
  // Interleaved, so a noisy moment on the machine hits all three alike.
  for (let round = 0; round < WARMUP + ROUNDS; round++) {
    for (const kind of Object.keys(kinds) as (keyof typeof kinds)[]) {
      const { funnelUs, teardownUs } = await parentDeathToTeardown(kinds[kind]);
      if (round < WARMUP) continue;
      samples[kind].push(teardownUs);
      if (funnelUs !== undefined) funnel.push(funnelUs);
    }
  }

  const spread = (values: number[]): string => {
    const sorted = [...values].sort((a, b) => a - b);
    return `min ${sorted[0]!.toFixed(0)} µs, median ${median(values).toFixed(0)} µs, p90 ${sorted[Math.floor(sorted.length * 0.9)]!.toFixed(0)} µs`;
  };
  console.log(`\nparent SIGKILLed → guarded child's teardown, ${ROUNDS} rounds each (after ${WARMUP} warm-up):`);
  console.log(`  cc-ci  'tearing down' line:  ${spread(funnel)}`);
  console.log(`  cc-ci  first teardown step:  ${spread(samples['cc-ci'])}`);
  console.log(`  C      handler marker:       ${spread(samples.C)}`);
  console.log(`  Python handler marker:       ${spread(samples.Python)}`);

  const vsPython = median(samples.Python);
  const vsC = median(samples.C);
  const rows: Row[] = [
    {
      case: "parent death → 'tearing down' line",
      ours: median(funnel),
      baseline: vsPython,
      unit: 'µs',
      baselineName: 'Python ctypes child',
      target: 1.5,
    },
    {
      case: 'parent death → first teardown step',
      ours: median(samples['cc-ci']),
      baseline: vsPython,
      unit: 'µs',
      baselineName: 'Python ctypes child',
      target: 1.5,
    },
    { case: "parent death → 'tearing down' line", ours: median(funnel), baseline: vsC, unit: 'µs', baselineName: 'C child' },
    { case: 'parent death → first teardown step', ours: median(samples['cc-ci']), baseline: vsC, unit: 'µs', baselineName: 'C child' },
  ];
  return printTable(`lifetime: parent death → teardown (median of ${ROUNDS})`, rows);
}
