// The flock-probe janitor: reaps the apps of runs that died, and only those. The kernel is the
// liveness oracle: a run holds its app lock for its whole life, so a lock nobody holds belongs to
// a dead run, and a held lock is never stolen.
//
// Guarantees:
// - only run-app names are probed; a warm/canonical name never gets a lockfile, let alone a reap;
// - an orphan is torn down WHILE its lock is held, so a new run of the domain waits for the reap;
//   its lockfile is unlinked before the lock is released (a waiter then retries on the live path);
// - two janitors at once (two processes, or two calls in one process) arbitrate on the same kernel
//   lock and an identity check, so each orphan is reaped once;
// - one bad candidate (unopenable lockfile, throwing teardown) is logged and skipped, never fatal;
// - a dry run changes nothing: no teardown, no unlink, no lockfile created.
//
// The decision table, the report and the CLI output are documented in docs/janitor.md.
import { closeSync } from 'node:fs';

import { CcciError } from './errors.js';
import { resolveDeadlineSeconds } from './lifetime.js';
import {
  LOCKFILE_PREFIX,
  LOCKFILE_SUFFIX,
  holderOf,
  legacyLockDir,
  lockDir,
  lockfilesHeldAfterUnlink,
  probeLockfile,
} from './lockfiles.js';
import { runAppPattern } from './naming.js';
import { LOCK_EX, LOCK_NB, LOCK_SH, PROBE_BUSY, PROBE_REPLACED, dropLockFile, probeLockFile, readdirMatching, sameFile } from './native.js';

/** A lock held past twice the hard deadline: no healthy run lives that long. */
export interface LongHeld {
  domain: string;
  /** The holder as /proc/locks names it; null when the kernel does not tell (another pid namespace). */
  pid: number | null;
  command: string | null;
  /** Time since the lockfile's mtime, which a run sets when it acquires the lock. */
  heldForMs: number;
}

export interface Skipped {
  domain: string;
  reason: string;
}

/** What a sweep found and did. In a dry run, `reaped` and `tidied` say what a real sweep would do. */
export interface JanitorReport {
  dryRun: boolean;
  /** Orphans torn down (teardown succeeded), their lockfiles unlinked. */
  reaped: string[];
  /** Candidates whose lock a live process holds: left alone. */
  live: string[];
  /** The subset of `live` held longer than twice the hard deadline: flagged, never stolen. */
  longHeld: LongHeld[];
  /** Candidates (and stray lockfiles) not acted on, or acted on and failed, with the reason. */
  skipped: Skipped[];
  /** Unheld lockfiles with no candidate app behind them, unlinked. */
  tidied: string[];
}

/** Candidate app domains (any names: only run-app names are kept). */
export type Discover = () => Iterable<string> | Promise<Iterable<string>>;
/** Removes everything of one app; must tolerate a half-gone app. Its errors are logged, not thrown. */
// biome-ignore lint/suspicious/noConfusingVoidType: a teardown may return nothing at all, as a () => void does
export type Teardown = (domain: string, generation?: string) => void | PromiseLike<unknown>;

export interface JanitorOptions {
  discover: Discover;
  teardown: Teardown;
  /** One line per decision; default stderr. */
  log?: (line: string) => void;
  /** Probe and report, act on nothing. */
  dryRun?: boolean;
  /** The hard deadline in force (whole seconds); default `CCCI_DEADLINE_SECONDS`, else 3600. */
  deadlineSeconds?: number;
}

// Lockfile names are built here without lockPath(): candidates already match the run-app pattern,
// so the per-candidate domain validation would be work done twice on the hot path.
const PREFIX = LOCKFILE_PREFIX;
const SUFFIX = LOCKFILE_SUFFIX;
/** A reap that took longer than this checks the lockfile's identity again before unlinking it. */
const RECHECK_AFTER_MS = 1;

// Lockfiles this process is reaping while its teardown awaits: a second janitor call in this
// process finds them busy (the kernel arbitrates between the two open file descriptions) and is
// told why rather than calling the reaper a live run.
const reapingHere = new Set<string>();

function describe(error: unknown): string {
  const message = (error as Error | undefined)?.message;
  return message ? message.split('\n')[0]! : String(error);
}

function minutes(ms: number): string {
  return `${Math.floor(ms / 60_000)} min`;
}

/**
 * Sweeps once: probes every run-app candidate's lock, reaps the orphans while holding their lock,
 * leaves live runs alone (flagging the long-held), then unlinks unheld lockfiles no candidate
 * stands behind. Rejects only when discovery fails or an option is invalid; whatever happens to a
 * single candidate is logged and reported.
 */
export async function janitor(options: JanitorOptions): Promise<JanitorReport> {
  const sink = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const log = (line: string): void => {
    try {
      sink(line);
    } catch {
      // a broken log must not stop a reap half-way
    }
  };
  const sweep = new Sweep(lockDir(), options.dryRun === true, 2 * resolveDeadlineSeconds(options.deadlineSeconds) * 1000, log);
  // The lock dir is listed BEFORE discovery: a lockfile listed now but gone when its candidate is
  // probed was unlinked by another janitor meanwhile (its reap is done, or under way).
  sweep.listLockDir();
  const pattern = runAppPattern();
  const candidates = new Set<string>();
  for (const name of await options.discover()) {
    if (typeof name === 'string' && pattern.test(name)) candidates.add(name);
  }
  if (!sweep.lockDirUsable(candidates)) return sweep.report;
  for (const domain of candidates) {
    const reaping = sweep.candidate(domain, options.teardown);
    if (reaping) await reaping;
  }
  sweep.tidy(candidates);
  return sweep.report;
}

// One sweep's state. Each candidate goes through `candidate()`, which never throws.
class Sweep {
  readonly report: JanitorReport;
  private readonly probeOp: number;
  private readonly tag: string;
  /** Domains of the lockfiles in the lock dir when the sweep began. */
  private domains: string[] = [];
  private dirError: string | null = null;
  private listed: Set<string> | undefined;
  private deletedButHeld: Set<string> | undefined;
  private readonly legacyDir = legacyLockDir();
  /** Where each probe leaves the lockfile's mtime, so a busy probe costs no second fstat. */
  private readonly mtime = new Float64Array(1);

  constructor(
    private readonly dir: string,
    private readonly dryRun: boolean,
    private readonly longHeldMs: number,
    private readonly log: (line: string) => void,
  ) {
    this.report = { dryRun, reaped: [], live: [], longHeld: [], skipped: [], tidied: [] };
    // A dry run probes with a shared lock: a run's exclusive lock refuses it, so it still tells held
    // from free, and other shared probers (cc-ci locks, other dry runs) never notice it. A real
    // janitor probing in that same microsecond sees a held lock and leaves it to its next sweep.
    this.probeOp = dryRun ? LOCK_SH | LOCK_NB : LOCK_EX | LOCK_NB;
    this.tag = dryRun ? '[dry run] ' : '';
  }

  /** Lists the lock dir once, for the absent-lockfile rule and for the tidy sweep. */
  listLockDir(): void {
    try {
      this.domains = readdirMatching(this.dir, PREFIX, SUFFIX);
    } catch (error) {
      this.dirError = `lock dir ${this.dir} cannot be used (${describe(error)})`;
    }
  }

  /** A missing or unusable lock dir: nothing can be probed, so every candidate is skipped, loudly. */
  lockDirUsable(candidates: Set<string>): boolean {
    if (this.dirError === null) return true;
    this.log(`!! janitor: ${this.dirError} — no lock can be probed, so nothing is reaped (${candidates.size} candidates skipped)`);
    for (const domain of candidates) this.report.skipped.push({ domain, reason: this.dirError });
    return false;
  }

  /** Probes one candidate; returns a promise only while an orphan's teardown is pending. */
  candidate(domain: string, teardown: Teardown): Promise<void> | undefined {
    const { report, log } = this;
    const path = `${this.dir}/${PREFIX}${domain}${SUFFIX}`;
    let fd: number | null;
    try {
      if (this.heldAtLegacyPath(domain)) return;
      fd = this.probe(domain, path);
    } catch (error) {
      log(`!! janitor: cannot probe lockfile ${path} (${describe(error)}) — skipping ${domain}`);
      report.skipped.push({ domain, reason: describe(error) });
      return;
    }
    if (fd === null) return;
    if (fd === PROBE_BUSY) {
      this.held(domain, path);
      return;
    }
    if (fd === PROBE_REPLACED) {
      // We got a lock, but on an inode the path no longer names: it means nothing.
      log(`   janitor: ${domain} — its lockfile was unlinked by another janitor as we probed; skipping`);
      report.skipped.push({ domain, reason: 'lockfile unlinked by another janitor during this sweep' });
      return;
    }
    if (this.dryRun) {
      closeSync(fd);
      log(`   janitor: ${this.tag}${domain} — lock free: orphan, would reap`);
      report.reaped.push(domain);
      return;
    }
    return this.reap(domain, path, fd, teardown); // reap() closes the fd, after the unlink
  }

  // During a move to a private lock dir, a run of an older runner holds its lock in the old shared
  // dir only: held there means live, whatever the private dir says. Never creates a lockfile there.
  private heldAtLegacyPath(domain: string): boolean {
    if (this.legacyDir === null) return false;
    const path = `${this.legacyDir}/${PREFIX}${domain}${SUFFIX}`;
    if (probeLockfile(path) !== 'held') return false;
    this.log(`   janitor: ${domain} — lock held at the legacy path ${path} by a live run, leaving it`);
    this.report.live.push(domain);
    return true;
  }

  // Probes the candidate's lockfile, creating it when absent (post-reboot: an orphan whose lock
  // must still be held during the reap, so a run starting now waits). Returns a locked fd,
  // PROBE_BUSY or PROBE_REPLACED, or null when the candidate was decided without a lockfile.
  private probe(domain: string, path: string): number | null {
    try {
      return probeLockFile(path, this.probeOp, false, this.mtime);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    this.listed ??= new Set(this.domains);
    if (this.listed.has(domain)) {
      // Another janitor unlinked it after we listed the dir: it reaped this app (or is reaping
      // it), or tidied a lockfile it found unheld. Either way the app is not ours to reap now.
      this.log(`   janitor: ${domain} — its lockfile was unlinked by another janitor during this sweep; skipping`);
      this.report.skipped.push({ domain, reason: 'lockfile unlinked by another janitor during this sweep' });
      return null;
    }
    this.deletedButHeld ??= lockfilesHeldAfterUnlink(this.dir);
    if (this.deletedButHeld.has(domain)) {
      this.log(`!! janitor: ${domain} — its lockfile was deleted, but a live process still holds the lock on it; leaving it`);
      this.report.live.push(domain);
      return null;
    }
    if (this.dryRun) {
      this.log(`   janitor: ${this.tag}${domain} — no lockfile (host rebooted?): orphan, would reap`);
      this.report.reaped.push(domain);
      return null;
    }
    this.log(`   janitor: ${domain} — no lockfile (host rebooted?): taking a fresh one`);
    return probeLockFile(path, this.probeOp, true, this.mtime);
  }

  private held(domain: string, path: string): void {
    const { report, log } = this;
    if (reapingHere.size > 0 && reapingHere.has(path)) {
      log(`   janitor: ${domain} — being reaped by another janitor call in this process`);
      report.skipped.push({ domain, reason: 'being reaped by another janitor call in this process' });
      return;
    }
    const heldForMs = Math.round(Date.now() - this.mtime[0]!);
    report.live.push(domain);
    if (heldForMs <= this.longHeldMs) {
      log(`   janitor: ${domain} — lock held by a live run, leaving it`);
      return;
    }
    const holder = holderOf(path);
    report.longHeld.push({ domain, pid: holder?.pid ?? null, command: holder?.command ?? null, heldForMs });
    const who = holder ? `pid ${holder.pid}${holder.command ? ` (${holder.command})` : ''}` : 'a process /proc/locks does not name';
    log(
      `!! janitor: lock for ${domain} held for ${minutes(heldForMs)} (over ${minutes(this.longHeldMs)}, twice the hard deadline) ` +
        `by ${who} — possible leaked run; never stolen; inspect with: lslocks${holder ? ` -p ${holder.pid}` : ''}`,
    );
  }

  // Tears the app down while holding its lock, then unlinks the lockfile, then closes the fd
  // (releasing the lock). A teardown that returns a promise is awaited; a synchronous one costs
  // no trip through the event loop.
  private reap(domain: string, path: string, fd: number, teardown: Teardown): Promise<void> | undefined {
    this.log(`   janitor: ${domain} — lock free: orphan, reaping`);
    const started = performance.now();
    let pending: unknown;
    try {
      pending = teardown(domain);
    } catch (error) {
      this.reaped(domain, path, fd, started, error ?? new CcciError('ERR_CCCI_TEARDOWN', 'teardown failed'));
      return;
    }
    if (pending === null || typeof (pending as PromiseLike<unknown> | undefined)?.then !== 'function') {
      this.reaped(domain, path, fd, started, undefined);
      return;
    }
    reapingHere.add(path); // another call in this process can only run while we wait here
    return Promise.resolve(pending).then(
      () => this.reaped(domain, path, fd, started, undefined),
      (error: unknown) => this.reaped(domain, path, fd, started, error ?? new CcciError('ERR_CCCI_TEARDOWN', 'teardown failed')),
    );
  }

  private reaped(domain: string, path: string, fd: number, started: number, failure: unknown): void {
    const { report, log } = this;
    reapingHere.delete(path);
    if (failure !== undefined) {
      log(`!! janitor: teardown of ${domain} failed: ${describe(failure)} — unlinking its lockfile anyway; the next sweep retries`);
    }
    // Under the protocol nobody replaces a lockfile whose lock is held, but a long teardown
    // leaves time for a human to have: never unlink a newer run's lockfile.
    let unlink = true;
    if (performance.now() - started >= RECHECK_AFTER_MS) {
      try {
        unlink = sameFile(fd, path);
        if (!unlink) log(`!! janitor: ${path} was replaced during the reap of ${domain}; leaving the new file`);
      } catch (error) {
        unlink = false;
        log(`!! janitor: could not unlink ${path}: ${describe(error)}`);
      }
    }
    try {
      // Unlink, then close: the close releases the lock, and a run waiting on this inode then
      // retries on the live path.
      if (unlink) dropLockFile(fd, path);
      else closeSync(fd);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).syscall === 'unlink') log(`!! janitor: could not unlink ${path}: ${describe(error)}`);
      else log(`!! janitor: could not close the lock of ${domain}: ${describe(error)}`);
    }
    if (failure === undefined) report.reaped.push(domain);
    else report.skipped.push({ domain, reason: `teardown failed: ${describe(failure)}` });
  }

  // Unheld `cc-ci-app-*.lock` files with no candidate behind them: a clean run's leftovers, a
  // warm app's lock between reconciles. Same probe, same identity check; a held one belongs to a
  // run between taking its lock and creating its app, and is left alone.
  tidy(candidates: Set<string>): void {
    const { report, log, dir } = this;
    const stale: string[] = [];
    for (const domain of this.domains) {
      if (candidates.has(domain)) continue;
      const path = `${dir}/${PREFIX}${domain}${SUFFIX}`;
      try {
        const fd = probeLockFile(path, this.probeOp, false);
        if (fd < 0) continue; // held, or replaced since we listed it
        if (this.dryRun) closeSync(fd);
        else dropLockFile(fd, path);
        stale.push(domain);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue; // tidied by someone else
        log(`!! janitor: cannot tidy lockfile ${path} (${describe(error)}) — skipping`);
        report.skipped.push({ domain, reason: describe(error) });
      }
    }
    for (const domain of stale.sort()) {
      log(`   janitor: ${this.tag}${this.dryRun ? 'would tidy' : 'tidied'} the stale lockfile of ${domain} (unheld, no app)`);
      report.tidied.push(domain);
    }
  }
}
