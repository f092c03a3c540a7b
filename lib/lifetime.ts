// The run's lifetime guards: a held app lock must never outlive the CI step that owns the run.
//
//   lock lifetime ⊆ process lifetime ⊆ CI step lifetime ⊆ hard deadline
//
// What this module guarantees, once installLifetimeGuards() has returned:
//   - the parent's death reaches us: PR_SET_PDEATHSIG(SIGTERM) is armed and checked, and a process
//     that is already orphaned refuses to run (the parent-death signal could never come);
//   - a cancel reaches us: SIGTERM, SIGINT and SIGHUP abort the run's AbortSignal and start the
//     teardown; SIGALRM, raised by alarm(2) at the hard deadline, does the same;
//   - teardown runs exactly once, whichever way the run ends, and the process always exits after it
//     with a code that says which way that was (docs/lifetime.md lists them);
//   - teardown is bounded too: past its budget the process exits anyway, and should the event loop
//     be wedged, the kernel's alarm ends it with SIGALRM's default action.
import { writeSync } from 'node:fs';
import { constants } from 'node:os';

import { CcciError, InputError, RunAbortedError, exitCodeFor, type RunEnd } from './errors.js';
import { alarm, armAlarmBackstop, getPdeathsig, getppid, setPdeathsig } from './native.js';

// The parent this process had when it started (near enough: when this module loaded). If getppid()
// differs later, that parent died and a subreaper adopted us: no parent-death signal will come.
const STARTED_UNDER = process.ppid;

export const DEFAULT_DEADLINE_SECONDS = 3600;
export const DEFAULT_TEARDOWN_BUDGET_SECONDS = 600;
/** Upper bound for both durations (one week); also keeps the budget inside setTimeout's range. */
export const MAX_LIFETIME_SECONDS = 7 * 24 * 3600;
/** After an abort, how long teardown waits for `main` to unwind (capped at a quarter of the budget). */
export const UNWIND_GRACE_MS = 10_000;
// The kernel backstop fires this long after the budget timer, for an event loop too wedged to run it.
const BACKSTOP_SECONDS = 1;

/** The signals that end a run. SIGALRM is the hard deadline. */
export type GuardedSignal = 'SIGTERM' | 'SIGINT' | 'SIGHUP' | 'SIGALRM';
const GUARDED: readonly GuardedSignal[] = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGALRM'];

/** A teardown step. Its `signal` aborts when the teardown budget runs out, just before the process exits. */
export type TeardownStep = (signal: AbortSignal) => void | Promise<void>;

export interface Lifetime {
  /**
   * Aborted the moment the run starts to end, with a {@link RunAbortedError} as its reason. Hand it
   * to every subprocess (execa `cancelSignal`) and lock wait of the run. Do not use it inside
   * teardown steps: by then it is already aborted.
   */
  readonly signal: AbortSignal;
  /** Registers a teardown step. Steps run once each, last registered first; a throw is logged, not fatal. */
  onTeardown(step: TeardownStep): void;
  /**
   * Runs `main(signal)`, then the teardown, then exits with main's code (1 if it threw). On a guarded
   * signal, main is given a short grace to unwind, then the teardown runs and the process exits with
   * 128+n whatever main does. Never resolves: the process ends inside. Call it at most once.
   */
  run(main: (signal: AbortSignal) => Promise<number>): Promise<never>;
  /**
   * Ends the run from outside main, as a guarded signal would: `line` is logged, main gets its grace,
   * the teardown runs and the process exits `exitCode`. For a lock that is lost (the etcd lease,
   * docs/scale-out.md#self-abort). A run already ending ignores it.
   */
  abort(line: string, exitCode: number, message: string): void;
}

export interface LifetimeOptions {
  /** Hard deadline in whole seconds; else `CCCI_DEADLINE_SECONDS`, else 3600. */
  deadlineSeconds?: number;
  /** How long teardown may take, in whole seconds; else `CCCI_TEARDOWN_BUDGET_SECONDS`, else 600. */
  teardownBudgetSeconds?: number;
  /** The parent pid this process must have; else `CCCI_EXPECTED_PPID` when set (`cc-ci step` sets it). */
  expectedPpid?: number;
  /**
   * Where the `== … ==` lines go; default stderr. Called right before process.exit, so it should
   * write synchronously; a line it throws on goes to stderr instead.
   */
  log?: (line: string) => void;
}

let installed = false;

/**
 * Arms the guards and returns the process's one {@link Lifetime}. Call it first thing, before any
 * lock or subprocess. Bad durations or pids throw an InputError naming the input. A process that is
 * already orphaned logs one line saying why and exits 1 right here, with no teardown.
 */
export function installLifetimeGuards(options: LifetimeOptions = {}): Lifetime {
  if (installed) {
    throw new CcciError('ERR_CCCI_LIFETIME_INSTALLED', 'lifetime guards are already installed in this process (one Lifetime per process)');
  }
  const deadline = resolveDeadlineSeconds(options.deadlineSeconds);
  const budget = resolveTeardownBudgetSeconds(options.teardownBudgetSeconds);
  const expected = expectedParent(options.expectedPpid);
  // Meant for this process only: a guarded grandchild must not inherit a pid that is not its parent.
  delete process.env.CCCI_EXPECTED_PPID;
  installed = true;

  const lifetime = new Guards(deadline, budget, safeLog(options.log));
  // Listeners first: the parent-death signal may arrive as soon as it is armed, and SIGALRM's
  // default action would kill the process without a teardown.
  lifetime.listen();
  setPdeathsig(constants.signals.SIGTERM);
  const armed = getPdeathsig();
  if (armed !== constants.signals.SIGTERM) {
    throw new CcciError('ERR_CCCI_PDEATHSIG', `PR_SET_PDEATHSIG(SIGTERM) did not take: PR_GET_PDEATHSIG reports ${armed}`);
  }
  // Checked only after arming: a parent dying from here on is caught by the signal, one that died
  // before is caught here. Either way no run goes unguarded.
  const why = orphaned(expected);
  if (why !== null) {
    lifetime.log(`== refusing to run: ${why} ==`);
    process.exit(exitCodeFor(new CcciError('ERR_CCCI_ORPHANED', why)));
  }
  alarm(deadline);
  rehearse(budget);
  return lifetime;
}

/**
 * A run receives one guarded signal, so the path from that signal to the first teardown step runs
 * exactly once, and V8 compiles each function on its first call: done after the signal, that was
 * most of the parent's-death-to-first-teardown-step time (bench/lifetime.bench.ts). So the funnel
 * is rehearsed now, while nothing is urgent: a dry Guards, whose backstop and exit do nothing and
 * whose log goes nowhere, runs a main that listens to its signal, receives SIGTERM, aborts, waits
 * for main to unwind and runs a step. The same functions then run warm for the real ending.
 * docs/lifetime.md#what-installlifetimeguards-does-in-order-and-why
 * Caveat: V8 may flush the bytecode of functions left unused across many garbage collections, so
 * deep into a long run part of that cost can come back; well under a millisecond, before a
 * teardown that takes seconds.
 */
function rehearse(budget: number): void {
  // The log wrapper and the signal listener are the real ones too, around a log that does nothing.
  const dry = new Guards(DEFAULT_DEADLINE_SECONDS, budget, safeLog(noop), true);
  dry.onTeardown(noop);
  void dry.run((signal) => new Promise<number>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))));
  dry.receive('SIGTERM');
}

/**
 * The abort reason for an ending, built without a stack: it would only ever show the funnel (a
 * thrown error's own stack stays in `cause`).
 */
function ending(end: RunEnd, exitCode: number, message: string, options?: ErrorOptions): RunAbortedError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new RunAbortedError(end, exitCode, `cc-ci: ${message}`, options);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

function orphaned(expected: { pid: number; from: string } | null): string | null {
  const ppid = getppid();
  const gone = 'the process that started this run is gone, so no parent-death signal can reach it';
  if (ppid === 1) return `parent is pid 1: ${gone}`;
  if (expected !== null && ppid !== expected.pid) return `parent is pid ${ppid}, not ${expected.from}=${expected.pid}: ${gone}`;
  if (ppid !== STARTED_UNDER) return `parent changed from pid ${STARTED_UNDER} to pid ${ppid} (adopted by a subreaper): ${gone}`;
  return null;
}

class Guards implements Lifetime {
  private readonly controller = new AbortController();
  private readonly teardownController = new AbortController();
  // Node makes an AbortController's signal on first use: made now, not on the way to the first step.
  private readonly teardownSignal = this.teardownController.signal;
  private readonly steps: TeardownStep[] = [];
  private ended: RunAbortedError | undefined;
  private runCalled = false;
  private mainSettled: Promise<void> | undefined;
  private mainDone = false;
  private budgetTimer: NodeJS.Timeout | undefined;

  // What each guarded signal logs and aborts with, made now rather than when the signal comes: the
  // same line and the same stackless error either way, and making them was on the path to the
  // first teardown step.
  private readonly signalEndings: Record<GuardedSignal, { line: string; reason: RunAbortedError }>;

  constructor(
    deadline: number,
    private readonly budget: number,
    readonly log: (line: string) => void,
    // The install-time rehearsal (see rehearse()): no backstop, no exit.
    private readonly dry = false,
  ) {
    const received = (name: Exclude<GuardedSignal, 'SIGALRM'>) => ({
      line: `== ${name} received — tearing down ==`,
      reason: ending(name, 128 + constants.signals[name], `${name} received`),
    });
    this.signalEndings = {
      SIGTERM: received('SIGTERM'),
      SIGINT: received('SIGINT'),
      SIGHUP: received('SIGHUP'),
      SIGALRM: {
        line: `== run exceeded ${duration(deadline)} hard deadline — tearing down ==`,
        reason: ending('SIGALRM', 128 + constants.signals.SIGALRM, `run exceeded its ${deadline}-second hard deadline`),
      },
    };
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  onTeardown(step: TeardownStep): void {
    if (typeof step !== 'function')
      throw Object.assign(new TypeError('onTeardown: step must be a function'), { code: 'ERR_INVALID_ARG_TYPE' });
    this.steps.push(step); // also fine while tearing down: the loop below pops until empty
  }

  run(main: (signal: AbortSignal) => Promise<number>): Promise<never> {
    if (this.runCalled) throw new CcciError('ERR_CCCI_LIFETIME_RUN', 'Lifetime.run() may be called once');
    this.runCalled = true;
    if (this.ended === undefined) {
      let result: Promise<number>;
      try {
        result = Promise.resolve(main(this.signal));
      } catch (error) {
        result = Promise.reject(error);
      }
      const done = (): void => {
        this.mainDone = true;
      };
      this.mainSettled = result.then(done, done);
      result.then(
        (code) => this.returned(code),
        (error: unknown) => this.threw(error, 'run threw', true),
      );
    }
    return new Promise<never>(noop);
  }

  abort(line: string, exitCode: number, message: string): void {
    if (this.ended !== undefined) return;
    this.log(line);
    this.end(ending('lost', exitCode, message), false);
  }

  listen(): void {
    for (const name of GUARDED) process.on(name, this.receive); // Node passes the signal's name
    process.on('uncaughtException', (error) => this.threw(error, 'uncaught error', false));
    // The loop ran dry before the run ended: either nobody called run() and the work is done, or
    // main awaits a promise nothing can settle any more. Both must still tear down.
    process.on('beforeExit', () => {
      if (this.ended !== undefined) return;
      if (!this.runCalled) return this.end(ending('returned', Number(process.exitCode ?? 0), 'the run finished'), true);
      this.log('== run stalled: main awaits a promise nothing can settle — tearing down ==');
      this.end(ending('stalled', 1, 'main stalled'), true);
    });
  }

  // The signal listener itself, so that the rehearsal runs the very function a signal will.
  readonly receive = (name: GuardedSignal): void => {
    if (this.ended !== undefined) {
      this.log(`== ${name} received during teardown — ignored ==`);
      return;
    }
    const { line, reason } = this.signalEndings[name];
    this.log(line);
    this.end(reason, false);
  };

  private returned(code: number): void {
    if (this.ended !== undefined) return; // a signal already decided the exit code
    if (!Number.isInteger(code) || code < 0 || code > 255) {
      this.log(`== run returned ${String(code)}, not an exit code (0-255) — treating it as a failure ==`);
      code = 1;
    }
    this.end(ending('returned', code, `the run returned ${code}`), true);
  }

  private threw(error: unknown, what: string, byMain: boolean): void {
    if (this.ended !== undefined) {
      // After an abort, main failing with the abort is expected; anything else still deserves a line.
      if (!isAbortOf(error, this.ended)) this.log(`== ${what} during teardown (ignored): ${describe(error)} ==`);
      return;
    }
    this.log(describe(error));
    this.log(`== ${what} — tearing down ==`);
    this.end(ending('threw', exitCodeFor(error), what, { cause: error }), byMain);
  }

  // The funnel: every way of ending comes through here, and only the first one gets past the guard.
  // `byMain`: main itself ended the run (returned, threw, stalled), so there is nothing to unwind.
  private end(reason: RunAbortedError, byMain: boolean): void {
    if (this.ended !== undefined) return;
    this.ended = reason;
    this.armBackstop();
    this.controller.abort(reason);
    void this.tearDown(reason, !byMain);
  }

  private armBackstop(): void {
    // The deadline no longer applies; the budget does. Backstop first: SIGALRM's default action,
    // set underneath Node, ends the process even if the event loop never turns again. Our listener
    // stays registered: removing it mid-dispatch would leave signal-exit (loaded by execa) as the
    // only listener, and it re-raises the signal to "die as if unhandled", before any teardown.
    if (this.dry) return;
    armAlarmBackstop(this.budget + BACKSTOP_SECONDS); // one call, not two: it is on the path to the first step
  }

  // The budget's timer. Armed once the first step has started or main is given a grace, whichever
  // comes first: off the path to the first step, yet before the event loop turns again (see
  // tearDown). Referenced on purpose: it keeps the loop alive, so a teardown step awaiting a promise
  // that can never settle ends here with the right exit code instead of a natural exit with 0.
  private armBudgetTimer(reason: RunAbortedError): void {
    if (this.budgetTimer !== undefined) return;
    this.budgetTimer = setTimeout(() => {
      this.log(`== teardown exceeded its ${duration(this.budget)} budget — exiting ${reason.exitCode} without finishing it ==`);
      this.teardownController.abort(new RunAbortedError(reason.end, reason.exitCode, 'cc-ci: teardown budget exceeded'));
      process.exit(reason.exitCode);
    }, this.budget * 1000);
  }

  private async tearDown(reason: RunAbortedError, waitForMain: boolean): Promise<void> {
    if (waitForMain && this.mainSettled !== undefined) {
      // Let main unwind first (everything it runs listens to the signal), so teardown steps never
      // race a deploy that is still being cancelled. One microtask turn first: a main that settled
      // during the abort's dispatch (its listener rejected) has had its reactions run by then, and
      // needs no grace timer.
      await null;
      if (!this.mainDone) await this.unwind(this.mainSettled, reason);
    }
    for (let step = this.steps.pop(); step !== undefined; step = this.steps.pop()) {
      try {
        await this.start(step, reason);
      } catch (error) {
        this.log('== a teardown step failed — continuing with the next ==');
        this.log(describe(error));
      }
    }
    // process.exit, not process.exitCode: whatever main left running (timers, children, a lock
    // wait) must not keep a finished run alive.
    if (this.dry) clearTimeout(this.budgetTimer);
    else process.exit(reason.exitCode);
  }

  // Waits for main to settle, at most a grace.
  private async unwind(mainSettled: Promise<void>, reason: RunAbortedError): Promise<void> {
    this.armBudgetTimer(reason);
    const grace = Math.min(UNWIND_GRACE_MS, this.budget * 250);
    let timer: NodeJS.Timeout | undefined;
    const unwound = await Promise.race([
      mainSettled.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(resolve, grace, false))),
    ]);
    clearTimeout(timer);
    if (!unwound) this.log(`== run did not stop within ${grace} ms of the abort — tearing down anyway ==`);
  }

  // Runs a step and, as soon as it has started (returned or thrown), arms the budget's timer.
  private start(step: TeardownStep, reason: RunAbortedError): void | Promise<void> {
    try {
      return step(this.teardownSignal);
    } finally {
      this.armBudgetTimer(reason);
    }
  }
}

function isAbortOf(error: unknown, reason: RunAbortedError): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e === reason || e.name === 'AbortError' || (e as { isCanceled?: unknown }).isCanceled === true) return true;
  }
  return false;
}

/**
 * The hard deadline in force, in whole seconds: `explicit`, else `CCCI_DEADLINE_SECONDS`, else
 * 3600. The janitor's long-held threshold (twice this) uses the same rule.
 */
export function resolveDeadlineSeconds(explicit?: number): number {
  return wholeSeconds(explicit, 'deadlineSeconds', 'CCCI_DEADLINE_SECONDS', DEFAULT_DEADLINE_SECONDS);
}

/** The teardown budget in force, in whole seconds: `explicit`, else `CCCI_TEARDOWN_BUDGET_SECONDS`, else 600. */
export function resolveTeardownBudgetSeconds(explicit?: number): number {
  return wholeSeconds(explicit, 'teardownBudgetSeconds', 'CCCI_TEARDOWN_BUDGET_SECONDS', DEFAULT_TEARDOWN_BUDGET_SECONDS);
}

function wholeSeconds(explicit: number | undefined, option: string, variable: string, fallback: number): number {
  if (explicit !== undefined) {
    if (!Number.isInteger(explicit) || explicit < 1 || explicit > MAX_LIFETIME_SECONDS) {
      throw new InputError(`${option} must be a whole number of seconds from 1 to ${MAX_LIFETIME_SECONDS}, got ${String(explicit)}`);
    }
    return explicit;
  }
  const raw = process.env[variable];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < 1 || value > MAX_LIFETIME_SECONDS) {
    throw new InputError(`${variable} must be a whole number of seconds from 1 to ${MAX_LIFETIME_SECONDS}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function expectedParent(explicit: number | undefined): { pid: number; from: string } | null {
  if (explicit !== undefined) {
    if (!Number.isInteger(explicit) || explicit < 2)
      throw new InputError(`expectedPpid must be a pid greater than 1, got ${String(explicit)}`);
    return { pid: explicit, from: 'expectedPpid' };
  }
  const raw = process.env.CCCI_EXPECTED_PPID;
  if (raw === undefined || raw === '') return null;
  if (!/^\d+$/.test(raw) || Number(raw) < 2)
    throw new InputError(`CCCI_EXPECTED_PPID must be a pid greater than 1, got ${JSON.stringify(raw)}`);
  return { pid: Number(raw), from: 'CCCI_EXPECTED_PPID' };
}

/** `60-minute` for whole minutes, else `90-second`. */
function duration(seconds: number): string {
  return seconds % 60 === 0 ? `${seconds / 60}-minute` : `${seconds}-second`;
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : String(error);
}

/** The caller's log, made unable to derail the funnel: a line it fails to write goes to stderr. */
function safeLog(log: ((line: string) => void) | undefined): (line: string) => void {
  if (log === undefined) return logToStderr;
  return (line) => {
    try {
      log(line);
    } catch {
      logToStderr(line);
    }
  };
}

// Synchronous, so a line logged just before process.exit is never lost; and it never throws: a CI
// log pipe that is gone (the CI runner was killed) must not derail a teardown.
function logToStderr(line: string): void {
  try {
    writeSync(2, `${line}\n`);
  } catch {
    // nowhere left to say it
  }
}

function noop(): void {}
