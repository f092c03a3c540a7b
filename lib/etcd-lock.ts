// The app lock on etcd, for one swarm spanning several nodes (docs/scale-out.md). The protocol is
// flock's, with a lease for the process lifetime: a run holds `/cc-ci/v1/<swarm>/app/<domain>`,
// created by a create-if-absent transaction and attached to a lease it renews in its own loop. The
// lease ends with the process (revoked at its end, or expired TTL after a crash), so "key present"
// means "its run is alive", as "lock held" does for flock. Release is always a revoke, never a
// delete by name (that could delete a newer holder's key). A holder that has had no renewal
// acknowledged for the abort deadline stops acting (lib/act-gate.ts) and aborts, before its lease
// can expire and before any janitor can take its key.
import { addActGate } from './act-gate.js';
import { CcciError, EXIT } from './errors.js';
import { EtcdClient, type EtcdKv } from './etcd.js';
import type { JanitorOptions, JanitorReport } from './janitor.js';
import { resolveDeadlineSeconds } from './lifetime.js';
import type { EtcdSettings } from './lock-backend.js';
import { runAppPattern } from './naming.js';

/** How often a waiter re-reads the key besides its watch: watch streams are known to die silently. */
const REREAD_MS = 2000;

/** Who holds a key: the key's value, JSON. */
export interface EtcdHolder {
  host: string;
  pid: number;
  runId: string;
  kind: 'run' | 'janitor';
  /** ISO time of the acquisition, for the long-held warning and `cc-ci locks`. */
  acquiredAt: string;
}

export interface EtcdAppLock {
  readonly domain: string;
  readonly key: string;
  /** The acquiring transaction's revision: the fencing token (docs/scale-out.md#generation). */
  readonly generation: string;
  /** Aborted when the lease is lost: stop acting on the app. */
  readonly signal: AbortSignal;
}

export function lockPrefix(cluster: string): string {
  return `/cc-ci/v1/${cluster}/app/`;
}

function parseHolder(kv: EtcdKv | null): EtcdHolder | null {
  if (kv === null) return null;
  try {
    return JSON.parse(kv.value) as EtcdHolder;
  } catch {
    return { host: '?', pid: 0, runId: '?', kind: 'run', acquiredAt: new Date(0).toISOString() };
  }
}

function describeHolder(holder: EtcdHolder | null, kv: EtcdKv | null): string {
  if (holder === null) return 'a holder that just let go';
  return `${holder.kind === 'janitor' ? 'a janitor' : `run ${holder.runId}`} on ${holder.host}, pid ${holder.pid}${kv ? `, generation ${kv.createRevision}` : ''}`;
}

/**
 * One lease this process owns, renewed every `renewSeconds` with a per-call deadline. Time is the
 * monotonic clock (performance.now): a renewal acknowledged counts from the moment it was SENT, so
 * the abort deadline always falls before the server's expiry, whatever the network's delays.
 */
export class OwnedLease {
  readonly id: string;
  private readonly controller = new AbortController();
  private ackedSentAt: number;
  private watchdog: NodeJS.Timeout | undefined;
  private exitTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly removeGate: () => void;

  private readonly client: EtcdClient;

  private constructor(
    private readonly settings: EtcdSettings,
    id: string,
    sentAt: number,
    private readonly onLost: (why: string) => void,
  ) {
    this.id = id;
    this.ackedSentAt = sentAt;
    // Renewals get a client of their own whose deadline per endpoint is a share of one renewal
    // period: a member that hangs (paused, partitioned) costs a renewal a share, not the whole.
    const { endpoints, ca, cert, key, renewSeconds } = settings;
    this.client = new EtcdClient({
      endpoints,
      ca,
      cert,
      key,
      timeoutMs: Math.max(200, Math.floor((renewSeconds * 1000) / (endpoints.length + 1))),
    });
    this.removeGate = addActGate(() => this.assertMayAct());
    this.arm();
    void this.renewLoop();
  }

  /**
   * Grants a lease and starts renewing it. `onLost` hears of a loss first (the run ends through its
   * lifetime funnel); if the process has not let go `abortTimeSeconds` later, it exits
   * `EXIT.leaseLost` (75).
   */
  static async grant(client: EtcdClient, settings: EtcdSettings, onLost: (why: string) => void, signal?: AbortSignal): Promise<OwnedLease> {
    const sentAt = performance.now();
    const { id } = await client.grant(settings.leaseSeconds, signal);
    return new OwnedLease(settings, id, sentAt, onLost);
  }

  /** Aborted, with an ERR_CCCI_LEASE_LOST error, once the lease counts as lost. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Throws once this process may no longer act under the lease: past the abort deadline and its abort time. */
  assertMayAct(): void {
    const { abortSeconds, abortTimeSeconds } = this.settings;
    const since = performance.now() - this.ackedSentAt;
    if (!this.closed && since > (abortSeconds + abortTimeSeconds) * 1000) {
      throw new CcciError(
        'ERR_CCCI_LEASE_LOST',
        `no etcd lease renewal acknowledged for ${(since / 1000).toFixed(1)} s: this process may no longer act on the host`,
      );
    }
  }

  /** Lets go: stops renewing and revokes the lease, which deletes every key attached to it. */
  async revoke(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.watchdog);
    clearTimeout(this.exitTimer);
    this.removeGate();
    try {
      await this.client.revoke(this.id, AbortSignal.timeout(this.settings.renewSeconds * 1000));
    } catch {
      // Unreachable: the lease expires on its own TTL, the same end a crash has.
    }
  }

  private arm(): void {
    clearTimeout(this.watchdog);
    const left = this.ackedSentAt + this.settings.abortSeconds * 1000 - performance.now();
    this.watchdog = setTimeout(() => this.lose(`no renewal acknowledged for ${this.settings.abortSeconds} s`), Math.max(0, left));
    this.watchdog.unref();
  }

  private async renewLoop(): Promise<void> {
    const { renewSeconds } = this.settings;
    const { setTimeout: sleep } = await import('node:timers/promises');
    // After a renewal that was not acknowledged, the next try comes sooner than a period.
    let wait = renewSeconds * 1000;
    while (!this.closed && !this.controller.signal.aborted) {
      try {
        await sleep(wait, undefined, { ref: false });
      } catch {
        return;
      }
      if (this.closed || this.controller.signal.aborted) return;
      const sentAt = performance.now();
      try {
        // The per-call deadline: one renewal period, so a hung call never delays the next.
        const ttl = await this.client.keepAliveOnce(this.id, AbortSignal.timeout(renewSeconds * 1000));
        if (ttl > 0) {
          this.ackedSentAt = sentAt;
          this.arm();
          wait = renewSeconds * 1000;
        } else this.lose('etcd says the lease is gone');
      } catch {
        // Not acknowledged: try again soon; the watchdog decides when it has been too long.
        wait = Math.min(renewSeconds * 1000, 250);
      }
    }
  }

  private lose(why: string): void {
    if (this.closed || this.controller.signal.aborted) return;
    const error = new CcciError('ERR_CCCI_LEASE_LOST', `etcd lease ${this.id} lost: ${why}`);
    this.controller.abort(error);
    // Told first; exits if it has not let go by the end of the abort time.
    this.exitTimer = setTimeout(() => {
      const line = `== etcd lease lost and not let go within ${this.settings.abortTimeSeconds} s — exiting ${EXIT.leaseLost} ==`;
      process.stderr.write(`${line}\n`);
      killOwnGroup();
      process.exit(EXIT.leaseLost);
    }, this.settings.abortTimeSeconds * 1000);
    try {
      this.onLost(why);
    } catch {
      // the exit timer stands
    }
  }
}

/**
 * SIGKILLs every other process of this process's group, when it leads one (a run under `cc-ci
 * step`, its own session): an abra or docker command still running must not act after its run's
 * abort time (docs/model/README.md: an action lands at most the slack after its check). A process
 * in someone else's group leaves the group alone.
 */
function killOwnGroup(): void {
  const { readFileSync, readdirSync } = process.getBuiltinModule('node:fs');
  // /proc/<pid>/stat: the pgrp is the 3rd field after the parenthesised command name.
  const pgrp = (pid: string): number =>
    Number(
      readFileSync(`/proc/${pid}/stat`, 'utf8')
        .replace(/^.*\) /s, '')
        .split(' ')[2],
    );
  try {
    if (pgrp('self') !== process.pid) return;
    for (const pid of readdirSync('/proc').filter((name) => /^[0-9]+$/.test(name) && Number(name) !== process.pid)) {
      try {
        if (pgrp(pid) === process.pid) process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    // no /proc: the exit alone
  }
}

export interface EtcdLocksOptions {
  settings: EtcdSettings;
  /** The swarm's cluster id: one key space per swarm. */
  cluster: string;
  /** This process in a holder's record. */
  runId: string;
  kind: 'run' | 'janitor';
  /** Hears of a lost lease (a run: its lifetime's abort). */
  onLost?: (why: string) => void;
  log?: (line: string) => void;
}

export interface EtcdAcquireOptions {
  signal?: AbortSignal;
  log?: (line: string) => void;
}

/** A process's app locks on etcd: one lease for them all, for the process's life. */
export class EtcdLocks {
  readonly client: EtcdClient;
  private lease: Promise<OwnedLease> | undefined;
  private readonly held = new Map<string, EtcdAppLock>();
  private lost = false;

  constructor(private readonly options: EtcdLocksOptions) {
    const { endpoints, ca, cert, key, renewSeconds } = options.settings;
    this.client = new EtcdClient({ endpoints, ca, cert, key, timeoutMs: Math.min(3000, renewSeconds * 1000) });
  }

  private value(): string {
    const holder: EtcdHolder = {
      host: this.options.settings.host,
      pid: process.pid,
      runId: this.options.runId,
      kind: this.options.kind,
      acquiredAt: new Date().toISOString(),
    };
    return JSON.stringify(holder);
  }

  private ownLease(signal?: AbortSignal): Promise<OwnedLease> {
    this.lease ??= OwnedLease.grant(
      this.client,
      this.options.settings,
      (why) => {
        this.lost = true;
        this.options.onLost?.(why);
      },
      signal,
    );
    this.lease.catch(() => (this.lease = undefined));
    return this.lease;
  }

  /**
   * Takes `domain`'s lock and keeps it for the process's life. While another process holds it, waits
   * on a watch for the key's deletion and re-reads it every {@link REREAD_MS}, logging one line that
   * names the holder. Never acquires again after the lease was lost.
   */
  async acquire(domain: string, options: EtcdAcquireOptions = {}): Promise<EtcdAppLock> {
    const log = options.log ?? this.options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
    const key = lockPrefix(this.options.cluster) + domain;
    let logged = false;
    for (;;) {
      const already = this.held.get(domain);
      if (already) return already;
      if (this.lost) throw new CcciError('ERR_CCCI_LEASE_LOST', `refusing to take ${domain}'s lock: this process lost its etcd lease`);
      options.signal?.throwIfAborted();
      const { lock, result } = await this.take(domain, key, options.signal);
      if (lock !== null) return lock;
      if (!logged) {
        logged = true;
        log(
          `== app lock: another run of ${domain} is in flight — waiting (held by ${describeHolder(parseHolder(result.holder), result.holder)}) ==`,
        );
      }
      await this.released(key, result.revision, options.signal);
    }
  }

  /** The generation of every lock this process holds, by domain. */
  generations(): Record<string, string> {
    return Object.fromEntries([...this.held.values()].map((lock) => [lock.domain, lock.generation]));
  }

  /** Whether this process holds `domain`'s lock. */
  holds(domain: string): boolean {
    return this.held.has(domain);
  }

  /** One try, never waiting: the lock, or null when someone holds it. */
  async tryAcquire(domain: string, signal?: AbortSignal): Promise<EtcdAppLock | null> {
    return (await this.take(domain, lockPrefix(this.options.cluster) + domain, signal)).lock;
  }

  /** The acquiring transaction on this process's lease: the lock when it won, and what etcd answered. */
  private async take(domain: string, key: string, signal?: AbortSignal) {
    const lease = await this.ownLease(signal);
    const result = await this.client.createIfAbsent(key, this.value(), lease.id, signal);
    if (!result.created && result.holder?.lease !== lease.id) return { lock: null, result };
    const generation = result.created ? result.revision : result.holder!.createRevision;
    const lock: EtcdAppLock = Object.freeze({ domain, key, generation, signal: lease.signal });
    this.held.set(domain, lock);
    return { lock, result };
  }

  /** Resolves once the key is gone (a watch, and a slow re-read beside it); rejects with `signal`'s reason. */
  private async released(key: string, seenAt: string, signal?: AbortSignal): Promise<void> {
    const stop = new AbortController();
    const both = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
    const watch = this.client.watchDelete(key, String(BigInt(seenAt) + 1n), both).catch(() => new Promise<void>(() => {}));
    const reread = (async () => {
      const { setTimeout: sleep } = await import('node:timers/promises');
      for (;;) {
        await sleep(REREAD_MS, undefined, { signal: both });
        if ((await this.client.get(key, both).catch(() => undefined)) === null) return;
      }
    })();
    try {
      await Promise.race([watch, reread]);
    } finally {
      stop.abort();
      reread.catch(() => {});
    }
    signal?.throwIfAborted();
  }

  /** Revokes the lease: every lock of this process goes at once. */
  async releaseAll(): Promise<void> {
    const lease = await this.lease?.catch(() => undefined);
    this.held.clear();
    await lease?.revoke();
  }
}

/** Every lock on etcd of this swarm, for `cc-ci locks`. */
export async function listEtcdLocks(
  settings: EtcdSettings,
  cluster: string,
): Promise<{ domain: string; holder: EtcdHolder | null; generation: string }[]> {
  const { endpoints, ca, cert, key } = settings;
  const client = new EtcdClient({ endpoints, ca, cert, key });
  const prefix = lockPrefix(cluster);
  return (await client.list(prefix))
    .map((kv) => ({ domain: kv.key.slice(prefix.length), holder: parseHolder(kv), generation: kv.createRevision }))
    .sort((a, b) => a.domain.localeCompare(b.domain));
}

/**
 * The janitor on etcd. A candidate whose key is there has a live holder: left alone, on a read. A
 * free one is reaped only after the acquiring transaction with a lease of its own (never on the
 * read alone: a run could slip in between); won, it reaps while it holds the key, then revokes.
 * Janitor against janitor needs nothing more: one transaction wins.
 */
export async function etcdJanitor(
  options: JanitorOptions & { settings: EtcdSettings; cluster: string; runId: string },
): Promise<JanitorReport> {
  const log = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const dryRun = options.dryRun === true;
  const report: JanitorReport = { dryRun, reaped: [], live: [], longHeld: [], skipped: [], tidied: [] };
  const longHeldMs = 2 * resolveDeadlineSeconds(options.deadlineSeconds) * 1000;
  const pattern = runAppPattern();
  const candidates = new Set<string>();
  for (const name of await options.discover()) if (typeof name === 'string' && pattern.test(name)) candidates.add(name);
  const tag = dryRun ? '[dry run] ' : '';
  const { endpoints, ca, cert, key: pem } = options.settings;
  const reads = new EtcdClient({ endpoints, ca, cert, key: pem });
  const firstLine = (error: unknown): string => String((error as Error).message).split('\n')[0]!;
  for (const domain of candidates) {
    const key = lockPrefix(options.cluster) + domain;
    let locks: EtcdLocks | undefined;
    try {
      const seen = await reads.get(key);
      if (seen !== null || dryRun) {
        if (seen === null) log(`   janitor: ${tag}${domain} — no lock held: would reap`);
        else live(domain, seen);
        (seen === null ? report.reaped : report.live).push(domain);
        continue;
      }
      // A lease per reap: revoking it lets go of this app alone.
      locks = new EtcdLocks({ settings: options.settings, cluster: options.cluster, runId: options.runId, kind: 'janitor', log });
      const lock = await locks.tryAcquire(domain);
      if (lock === null) {
        live(domain, await reads.get(key));
        report.live.push(domain);
        continue;
      }
      // Another janitor may have reaped it between our discovery and our transaction: its key went
      // with its revoke, so ours was free. Only an app still there is reaped, so each is reaped once.
      if (![...(await options.discover())].includes(domain)) {
        log(`   janitor: ${domain} — gone since discovery (another janitor reaped it); nothing to do`);
        continue;
      }
      log(`== janitor: ${domain} — no run holds its lock: reaping (generation ${lock.generation}) ==`);
      try {
        await options.teardown(domain, lock.generation);
        report.reaped.push(domain);
      } catch (error) {
        log(`!! janitor: reaping ${domain} failed (${firstLine(error)}) — the next sweep tries again`);
        report.skipped.push({ domain, reason: `teardown failed: ${firstLine(error)}` });
      }
    } catch (error) {
      log(`!! janitor: cannot probe ${domain}'s lock on etcd (${firstLine(error)}) — skipping it`);
      report.skipped.push({ domain, reason: firstLine(error) });
    } finally {
      await locks?.releaseAll();
    }
  }
  reads.close();
  return report;

  function live(domain: string, kv: EtcdKv | null): void {
    const holder = parseHolder(kv);
    const heldForMs = holder ? Date.now() - Date.parse(holder.acquiredAt) : 0;
    log(`   janitor: ${tag}${domain} — live: held by ${describeHolder(holder, kv)}`);
    if (holder && heldForMs > longHeldMs) {
      report.longHeld.push({ domain, heldForMs, pid: holder.pid, command: `${holder.kind} ${holder.runId} on ${holder.host}` });
      log(
        `!! janitor: ${domain} LONG-HELD for ${Math.floor(heldForMs / 60_000)} min by ${describeHolder(holder, kv)} — possible leaked run`,
      );
    }
  }
}
