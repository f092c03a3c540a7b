// The app-lock protocol, model-checked: docs/model/check.sh runs SPIN over docs/model/lock-protocol.pml
// (the flock backend) and docs/model/lease-protocol.pml (the etcd-lease backend).
// The correct models must verify every property exhaustively, and each variant (one rule of the
// protocol taken out, or one assumption dropped) must give the counterexample it stands for; a model
// that no longer tells them apart has drifted from the code it documents.
//
// Without spin this suite is skipped, except under CI, where a missing spin is a failure: .ci/run
// installs it (.ci/setup-tools.sh).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CHECK = fileURLToPath(new URL('../../docs/model/check.sh', import.meta.url));
const CHECK_TIMEOUT_MS = 150_000; // ~25 s on two cores (load 3); room for a loaded CI machine

const PROPERTIES = ['mutex', 'appsafe', 'onpath', 'fresh', 'cleanup', 'progress'] as const;

// Written out here rather than read from check.sh, so an edit there that quietly drops an
// expectation fails here.
const VARIANTS: ReadonlyArray<[variant: string, breaks: string[], because: string]> = [
  ['NO_IDENTITY_CHECK', ['mutex', 'onpath'], 'a lock won on an unlinked inode is believed'],
  ['UNLINK_AFTER_RELEASE', ['mutex', 'onpath'], 'the janitor unlinks a lockfile a run acquired after its release'],
  ['REAP_AFTER_RELEASE', ['appsafe'], 'the janitor tears down the app of a run that took the lock it released'],
  ['NO_LEFTOVER_REMOVAL', ['fresh'], 'a run that waited installs on top of its dead predecessor’s app'],
  ['HUNG_TEARDOWN', ['progress'], 'a janitor stuck in its teardown holds the lock forever'],
  ['PARTIAL_DISCOVERY', ['cleanup'], 'volumes and secrets without a .env or a service are never discovered'],
  ['CHILD_SURVIVES', ['appsafe', 'fresh'], 'a dead run’s subprocess lands on the next run’s app'],
];

// The lease model (docs/model/README.md, "The etcd-lease model"): one run and one janitor sweep
// (`lease`), and two runs (`lease-2runs`), each against P1-P5's lease analogues.
const LEASE_MODELS = ['lease', 'lease-2runs'] as const;
const LEASE_PROPERTIES = ['mutex', 'appsafe', 'onkey', 'fresh', 'cleanup'] as const;

const LEASE_VARIANTS: ReadonlyArray<[variant: string, breaks: string[], because: string]> = [
  ['lease-NO_SELF_ABORT', ['mutex', 'appsafe', 'onkey'], 'a run cut off from etcd acts on docker while the janitor reaps'],
  ['lease-ABORT_GE_TTL', ['mutex', 'appsafe', 'onkey'], 'ABORT = TTL: the run still acts when its lease expires'],
  ['lease-NO_SLACK', ['mutex', 'appsafe', 'onkey'], 'TTL = ABORT + ABORT_TIME: an action started in time lands after the expiry'],
  ['lease-CLOCK_FROM_ACK', ['mutex', 'appsafe', 'onkey'], 'a deadline counted from a late answer outlives the lease'],
  ['lease-JANITOR_NO_SELF_ABORT', ['mutex', 'appsafe'], 'a janitor paused past its lease reaps the next run’s install'],
];

const spinThere = spawnSync('spin', ['-V'], { stdio: 'ignore' }).status === 0;
const inCi = Boolean(process.env.CI);

interface CheckRun {
  code: number | null;
  stdout: string;
  stderr: string;
  results: Map<string, string>;
}

function runCheck(env: NodeJS.ProcessEnv): Promise<CheckRun> {
  return new Promise((done, fail) => {
    const child = spawn('bash', [CHECK], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // check.sh bounds every search itself (CCCI_MODEL_TIMEOUT); this is the backstop. SIGTERM lets
    // its trap stop the verifiers and remove its build dir.
    const timer = setTimeout(() => child.kill('SIGTERM'), CHECK_TIMEOUT_MS - 5_000);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      const results = new Map<string, string>();
      for (const match of stdout.matchAll(/^model: (\S+) (\S+): (\S+)$/gm)) results.set(`${match[1]} ${match[2]}`, match[3]!);
      done({ code, stdout, stderr, results });
    });
  });
}

describe.skipIf(!spinThere && !inCi)('the app-lock protocol model (SPIN, docs/model/)', () => {
  let tmp: string;
  let run: CheckRun;

  beforeAll(async () => {
    // check.sh builds in $TMPDIR: a dir of our own shows that it leaves nothing behind.
    tmp = mkdtempSync(join(tmpdir(), 'cc-ci-model-test-'));
    run = await runCheck({ ...process.env, TMPDIR: tmp });
  }, CHECK_TIMEOUT_MS);

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('has spin and a C compiler to check with', () => {
    expect(spinThere, 'spin is not installed: .ci/setup-tools.sh installs it').toBe(true);
    expect(run.code, run.stderr).not.toBe(2);
  });

  it.each(PROPERTIES)('the correct model satisfies %s, exhaustively', (property) => {
    expect(run.results.get(`correct ${property}`), run.stderr).toBe('ok');
  });

  describe.each(LEASE_MODELS)('the lease model %s', (model) => {
    it.each(LEASE_PROPERTIES)('satisfies %s, exhaustively', (property) => {
      expect(run.results.get(`${model} ${property}`), run.stderr).toBe('ok');
    });

    it('reaches the paused run: SIGSTOPped past its lease, reaped meanwhile, resumed, exits (a witness)', () => {
      expect(run.results.get(`${model} pausewitness`), run.stderr).toBe('counterexample');
    });
  });

  describe.each([...VARIANTS, ...LEASE_VARIANTS])('variant %s', (variant, breaks, because) => {
    it.each(breaks)(`gives a counterexample to %s (${because})`, (property) => {
      expect(run.results.get(`${variant} ${property}`), run.stderr).toBe('counterexample');
    });
  });

  it('check.sh agrees (exit 0), prints a trail for every counterexample, and leaves no build dir behind', () => {
    expect(run.code, run.stderr).toBe(0);
    const counterexamples = [...run.results.values()].filter((result) => result === 'counterexample').length;
    expect(run.stderr.match(/^ {3}trail: .+$/gm) ?? []).toHaveLength(counterexamples);
    expect(readdirSync(tmp)).toEqual([]);
  });
});
