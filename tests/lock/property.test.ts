// A seeded property test of the app-lock protocol (issue 6 item 4), on the real kernel.
//
// N actor processes (tests/helpers/prop-lock-actor.mjs) take random steps on a few domains:
// acquire (acquireAppLock: may wait, sometimes with an abort deadline), probe (probeLock), reap
// (janitor() with the domains as its discovery and a teardown that may take a while), unlink (the
// tidy sweep's identity-checked unlink) and die (SIGKILL, then a fresh actor in its place). Steps
// that wait (an acquire behind a holder, a slow teardown) stay in flight across later steps, so
// waiters, reapers, unlinks and deaths interleave for real.
//
// After every step, from what each live actor says it believes (one JS turn each) and from the
// kernel (/proc/locks, /proc/<pid>/fdinfo, stat, flock(1)):
//   I1 at most one live process believes it holds each domain;
//   I2 a believer's lock is the one the path names: its fd's inode is the path's inode (as it
//      reports identity(fd) vs pathIdentity(path), and as stat + its fdinfo show from outside),
//      and flock(1) -n on the path fails;
//   I3 no process tears a domain down while a live process believes it holds it, and a teardown
//      runs under the lock on the inode the path names;
//   I4 a probe of a domain someone believes they hold says 'held';
//   I5 no sweep reports a domain reaped whose believer was alive across the whole sweep;
//   I6 every kernel lock on a lockfile's inode belongs to its believer, its reaper, or a process
//      still inside acquireAppLock for it (granted, not yet told) — a cancelled wait, a finished
//      sweep or an unlink step never leaves a lock behind.
//
// The seed is printed (CCCI_PROP_SEED replays it); CCCI_PROP_STEPS changes the step count.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { afterEach, describe, expect, it } from 'vitest';

import { inodeKey, kernelFlocks } from '../support/kernel-locks.js';
import { HELPERS, isGone, tempDir, cleanup } from '../support/processes.js';
import { Random, seedFrom } from '../support/random.js';

const SEED = seedFrom('CCCI_PROP_SEED', 0x10c4_50);
const STEPS = Number(process.env.CCCI_PROP_STEPS || 200);
const ACTORS = 6;
const BASE = 'prop.test';
const DOMAINS = ['pa-00000a.prop.test', 'pb-00000b.prop.test', 'pc-00000c.prop.test'];

interface Held {
  domain: string;
  path: string;
  fd: number;
  fdIno: string;
  fdDev: string;
  pathIno: string | null;
  pathDev: string | null;
  same: boolean;
}
interface Status {
  pid: number;
  held: Held[];
  pending: string[];
  reaping: string[];
}
interface Report {
  reaped: string[];
  live: string[];
  skipped: { domain: string; reason: string }[];
  tidied: string[];
}
type Message = { id?: number; event?: string; error?: string; [key: string]: unknown };

class Actor {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<void>;
  readonly events: Message[] = [];
  readonly stderr: string[] = [];
  private nextId = 1;
  private readonly waiting = new Map<number, (message: Message) => void>();
  private readonly ready: Promise<void>;
  /** Sweeps started here and not finished: sweep number -> believers seen when it started. */
  readonly sweeps = new Map<number, Map<string, number>>();

  constructor(
    readonly slot: number,
    lockDir: string,
    private readonly onEvent: (actor: Actor, message: Message) => void,
  ) {
    this.child = spawn(process.execPath, [join(HELPERS, 'prop-lock-actor.mjs')], {
      env: { ...process.env, CCCI_APP_LOCK_DIR: lockDir, CCCI_BASE_DOMAIN: BASE },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    if (this.child.pid === undefined) throw new Error('could not start an actor');
    this.pid = this.child.pid;
    live.add(this);
    this.exited = new Promise((resolve) => this.child.on('exit', () => resolve()));
    let readyResolve: () => void;
    this.ready = new Promise((resolve) => (readyResolve = resolve));
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const message = JSON.parse(line) as Message;
      if (message.event === 'ready') return readyResolve();
      if (message.id !== undefined) {
        const resolve = this.waiting.get(message.id);
        this.waiting.delete(message.id);
        resolve?.(message);
        return;
      }
      this.events.push(message);
      this.onEvent(this, message);
    });
    createInterface({ input: this.child.stderr! }).on('line', (line) => {
      this.stderr.push(line);
      if (this.stderr.length > 50) this.stderr.shift();
    });
  }

  async start(): Promise<this> {
    await within(this.ready, 15_000, `actor ${this.slot} to start`);
    return this;
  }

  async request(op: string, args: Record<string, unknown> = {}): Promise<Message> {
    const id = this.nextId++;
    const reply = new Promise<Message>((resolve) => this.waiting.set(id, resolve));
    this.child.stdin!.write(`${JSON.stringify({ id, op, ...args })}\n`);
    return within(reply, 10_000, `actor ${this.slot} (pid ${this.pid}) to answer ${op}\n${this.stderr.join('\n')}`);
  }

  async kill(): Promise<void> {
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      // gone already
    }
    await this.exited;
    const deadline = Date.now() + 5_000;
    while (!isGone(this.pid)) {
      if (Date.now() > deadline) throw new Error(`actor pid ${this.pid} did not go away`);
      await new Promise((r) => setTimeout(r, 2));
    }
    live.delete(this);
  }
}

const live = new Set<Actor>();
afterEach(async () => {
  await Promise.all([...live].map((actor) => actor.kill()));
  await cleanup();
});

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms))),
  ]);
}

// flock(1) on a descriptor the shell opened without O_CREAT: exit 0 free, 200 held, 3 no such file.
const SH_FLOCK = 'flock -n -x -E 200 9 9<"$0" 2>/dev/null; s=$?; [ $s = 0 ] || [ $s = 200 ] || exit 3; exit $s';

/**
 * flock(1) as an outside observer: can it take the lock on `path` right now? The shell opens the
 * file without O_CREAT (`flock <path>` would create a missing one); -E 200 marks "busy".
 */
function flockCanTake(path: string): boolean {
  const result = spawnSync('sh', ['-c', SH_FLOCK, path], { encoding: 'utf8', timeout: 10_000 });
  if (result.error) throw result.error;
  if (result.status === 200) return false;
  if (result.status === 0) return true;
  throw new Error(`flock(1) on ${path} failed: ${result.status === 3 ? 'no such file' : result.status} ${result.stderr}`);
}

/** The FLOCK lock open file `fd` of `pid` holds, from /proc/<pid>/fdinfo: `{type, ino}` or null. */
function fdinfoLock(pid: number, fd: number): { type: string; ino: string } | null {
  const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
  const match = /^lock:\s+\d+:\s+FLOCK\s+\S+\s+(READ|WRITE)\s+\d+\s+[0-9a-f]+:[0-9a-f]+:(\d+)\s/m.exec(info);
  return match ? { type: match[1]!, ino: match[2]! } : null;
}

describe('the lock protocol under random acquire / probe / reap / unlink / die', () => {
  it(`keeps one holder per domain, on the path's inode, through ${STEPS} seeded steps (seed ${SEED})`, { timeout: 120_000 }, async () => {
    const rng = new Random(SEED);
    const lockDir = tempDir('ccci-prop-locks-');
    const paths = new Map(DOMAINS.map((d) => [d, join(lockDir, `cc-ci-app-${d}.lock`)]));
    const trace: string[] = [];
    const violations: string[] = [];
    const tally: Record<string, number> = {};
    const note = (line: string): void => {
      trace.push(line);
      if (trace.length > 60) trace.shift();
    };
    const fail = (why: string): never => {
      throw new Error(`seed ${SEED}: ${why}\n--- last steps ---\n${trace.join('\n')}`);
    };
    const t0 = performance.now();
    console.log(
      `lock property: seed ${SEED} (replay with CCCI_PROP_SEED=${SEED}), ${STEPS} steps, ${ACTORS} actors, domains ${DOMAINS.join(' ')}`,
    );

    // Believers as of the last snapshot, per domain: pid of the believer.
    let believers = new Map<string, number>();
    // Domains some sweep was tearing down at the last check: acquiring one of them queues a waiter
    // on an inode the reaper is about to unlink, the interleaving the identity checks exist for.
    let reapingNow: string[] = [];
    const events: Message[] = [];
    const onEvent = (actor: Actor, message: Message): void => {
      events.push(message);
      note(`  event from actor ${actor.slot} (pid ${actor.pid}): ${JSON.stringify(message)}`);
      if (message.event === 'reaped' || message.event === 'reap-failed') {
        const sweep = message.sweep as number;
        const before = actor.sweeps.get(sweep);
        actor.sweeps.delete(sweep);
        if (message.event === 'reap-failed') violations.push(`sweep ${sweep} of actor ${actor.slot} rejected: ${message.error}`);
        const report = message.report as Report | undefined;
        // I5: a believer seen before the sweep began and still believing now was alive throughout.
        for (const domain of report?.reaped ?? []) {
          const pid = before?.get(domain);
          if (pid !== undefined && believers.get(domain) === pid && [...live].some((a) => a.pid === pid)) {
            violations.push(`I5: sweep ${sweep} of actor ${actor.slot} reaped ${domain} while pid ${pid} held it throughout`);
          }
        }
      }
      if (message.event === 'bad-request') violations.push(`actor ${actor.slot}: ${JSON.stringify(message)}`);
      // I3, as the kernel sees it when a teardown starts: the reaper holds the path's inode.
      if (message.event === 'teardown') {
        tally.teardownLockChecks = (tally.teardownLockChecks ?? 0) + 1;
        if (message.lockedByMe !== true)
          violations.push(
            `I3: actor ${actor.slot} (pid ${actor.pid}) tears ${message.domain} down without the lock on the path (${message.why})`,
          );
      }
    };

    const actors: Actor[] = await Promise.all(Array.from({ length: ACTORS }, (_, slot) => new Actor(slot, lockDir, onEvent).start()));

    const snapshot = async (): Promise<Map<Actor, Status>> => {
      const statuses = new Map<Actor, Status>();
      for (const actor of actors) {
        const reply = await actor.request('status');
        if (reply.error) fail(`actor ${actor.slot} status failed: ${reply.error}`);
        statuses.set(actor, reply as unknown as Status);
      }
      return statuses;
    };

    // Beliefs only grow while a process lives (there is no unlock), and no step runs while we
    // check; so a belief seen in the first pass still holds at any later instant of the check.
    // Teardowns are the exception (they end on their own), so they are read in a second pass,
    // after the believers: a believer of pass 1 that a reaper of pass 2 is tearing down was alive
    // during that teardown. The kernel's view is read between the two passes.
    const check = async (step: number): Promise<void> => {
      const first = await snapshot();
      const now = new Map<string, number>();
      for (const [actor, status] of first) {
        for (const held of status.held) {
          // I1
          if (now.has(held.domain))
            fail(
              `I1 step ${step}: ${held.domain} believed held by pid ${now.get(held.domain)} and pid ${status.pid} (actor ${actor.slot})`,
            );
          now.set(held.domain, status.pid);
          // I2, as the holder sees it
          if (!held.same || held.pathIno !== held.fdIno || held.pathDev !== held.fdDev) {
            fail(
              `I2 step ${step}: actor ${actor.slot} (pid ${status.pid}) believes it holds ${held.domain} on inode ${held.fdIno}, but the path names ${held.pathIno ?? 'nothing'}`,
            );
          }
        }
      }
      // The kernel's view: every lock on a lockfile's current inode.
      const keys = new Map<string, string>();
      for (const [domain, path] of paths) {
        try {
          keys.set(inodeKey(path), domain);
        } catch {
          // absent
        }
      }
      const kernel = kernelFlocks().filter((lock) => !lock.waiting && keys.has(lock.key));
      // I2, from outside: stat, the holder's fdinfo, flock(1).
      for (const [, status] of first) {
        for (const held of status.held) {
          let pathIno: string;
          try {
            pathIno = String(statSync(held.path, { bigint: true }).ino);
          } catch {
            return fail(`I2 step ${step}: ${held.path} is gone while pid ${status.pid} believes it holds ${held.domain}`);
          }
          const lock = fdinfoLock(status.pid, held.fd);
          if (lock?.type !== 'WRITE' || lock.ino !== pathIno) {
            fail(`I2 step ${step}: pid ${status.pid} fd ${held.fd} holds ${JSON.stringify(lock)}, the path's inode is ${pathIno}`);
          }
          if (flockCanTake(held.path)) fail(`I2 step ${step}: flock(1) took ${held.path} while pid ${status.pid} believes it holds it`);
          tally.believerChecks = (tally.believerChecks ?? 0) + 1;
        }
      }
      const second = await snapshot();
      // I3: nobody tears down what a live process believes it holds.
      for (const [actor, status] of second) {
        for (const domain of status.reaping) {
          if (now.has(domain))
            fail(
              `I3 step ${step}: actor ${actor.slot} (pid ${status.pid}) tearing ${domain} down while pid ${now.get(domain)} believes it holds it`,
            );
          tally.reaperChecks = (tally.reaperChecks ?? 0) + 1;
        }
      }
      // I6: every kernel lock on a lockfile's current inode is accounted for, in either pass.
      for (const lock of kernel) {
        const domain = keys.get(lock.key)!;
        const accounts = (statuses: Map<Actor, Status>): boolean =>
          [...statuses.values()].some(
            (s) =>
              s.pid === lock.pid && (s.held.some((h) => h.domain === domain) || s.reaping.includes(domain) || s.pending.includes(domain)),
          );
        if (!accounts(first) && !accounts(second)) {
          const who = [...first].find(([, s]) => s.pid === lock.pid);
          fail(
            `I6 step ${step}: pid ${lock.pid}${who ? ` (actor ${who[0].slot})` : ' (no live actor)'} holds a ${lock.type} lock on ${domain}'s lockfile without believing, reaping or acquiring it`,
          );
        }
      }
      if (violations.length) fail(violations.join('\n'));
      believers = now;
      reapingNow = [...second.values()].flatMap((status) => status.reaping);
    };

    await check(0);
    for (let step = 1; step <= STEPS; step++) {
      const op = rng.weighted<string>([
        ['acquire', 25],
        ['probe', 10],
        ['reap', 25],
        ['unlink', 12],
        ['die', 18],
        ['pause', 10],
      ]);
      // Deaths mostly strike holders, so that domains keep coming free with waiters queued behind.
      const holders = actors.filter((a) => [...believers.values()].includes(a.pid));
      const actor = op === 'die' && holders.length > 0 && rng.chance(0.7) ? rng.pick(holders) : rng.pick(actors);
      const domain = op === 'acquire' && reapingNow.length > 0 && rng.chance(0.7) ? rng.pick(reapingNow) : rng.pick(DOMAINS);
      tally[op] = (tally[op] ?? 0) + 1;
      const prefix = `step ${step}: actor ${actor.slot} (pid ${actor.pid})`;
      switch (op) {
        case 'acquire': {
          const abortMs = rng.chance(0.5) ? rng.int(0, 80) : undefined;
          note(`${prefix} acquire ${domain}${abortMs === undefined ? '' : ` (abort after ${abortMs} ms)`}`);
          const reply = await actor.request('acquire', { domain, abortMs });
          if (reply.error) fail(`${prefix} acquire failed: ${reply.error}`);
          break;
        }
        case 'probe': {
          const before = believers.get(domain);
          const reply = await actor.request('probe', { domain });
          note(`${prefix} probe ${domain} -> ${reply.state ?? reply.error}`);
          if (reply.error) fail(`${prefix} probe failed: ${reply.error}`);
          // I4 (a believer stays one while it lives: there is no unlock)
          if (before !== undefined && actors.some((a) => a.pid === before) && reply.state !== 'held') {
            fail(`I4 ${prefix}: probe of ${domain} said ${reply.state} while pid ${before} holds it`);
          }
          break;
        }
        case 'reap': {
          const domains = rng.shuffle([...DOMAINS, 'warm.prop.test', 'keycloak.example']).slice(0, rng.int(1, 4));
          const delayMs = rng.pick([0, 0, 10, 40, 100, 150]);
          const reply = await actor.request('reap', { domains, delayMs });
          if (reply.error) fail(`${prefix} reap failed: ${reply.error}`);
          actor.sweeps.set(reply.sweep as number, new Map(believers));
          note(`${prefix} reap #${reply.sweep} of [${domains.join(', ')}] teardown ${delayMs} ms`);
          break;
        }
        case 'unlink': {
          const reply = await actor.request('unlink', { domain });
          note(`${prefix} unlink ${domain} -> ${reply.result ?? reply.error}`);
          if (reply.error) fail(`${prefix} unlink failed: ${reply.error}`);
          if (reply.result === 'unlinked' && believers.has(domain) && actors.some((a) => a.pid === believers.get(domain))) {
            fail(`${prefix}: unlinked ${domain}'s lockfile while pid ${believers.get(domain)} holds it`);
          }
          tally[`unlink:${reply.result}`] = (tally[`unlink:${reply.result}`] ?? 0) + 1;
          break;
        }
        case 'die': {
          note(`${prefix} SIGKILL`);
          await actor.kill();
          actors[actor.slot] = await new Actor(actor.slot, lockDir, onEvent).start();
          note(`  actor ${actor.slot} restarted as pid ${actors[actor.slot]!.pid}`);
          break;
        }
        default: {
          const ms = rng.int(0, 30);
          note(`step ${step}: pause ${ms} ms`);
          await new Promise((r) => setTimeout(r, ms));
        }
      }
      if (rng.chance(0.3)) await new Promise((r) => setTimeout(r, rng.int(0, 5))); // let in-flight work move
      await check(step);
    }

    // Let in-flight sweeps finish (teardowns take at most 150 ms), then check once more.
    await new Promise((r) => setTimeout(r, 300));
    await check(STEPS + 1);
    const count = (what: string): number => events.filter((e) => e.event === what).length;
    const reports = events.filter((e) => e.event === 'reaped').map((e) => e.report as Report);
    const summary = {
      seed: SEED,
      steps: STEPS,
      ms: Math.round(performance.now() - t0),
      ops: tally,
      granted: count('acquired'),
      cancelledOrFailed: count('acquire-failed'),
      teardowns: count('teardown'),
      reaped: reports.reduce((n, r) => n + r.reaped.length, 0),
      tidied: reports.reduce((n, r) => n + r.tidied.length, 0),
    };
    console.log(`lock property: ${JSON.stringify(summary)}`);
    // The run exercised what it claims to (with any seed, 200 steps give plenty of each).
    expect(tally.believerChecks ?? 0).toBeGreaterThan(STEPS / 4);
    expect(summary.granted).toBeGreaterThan(5);
    expect(summary.teardowns).toBeGreaterThan(0);
  });
});
