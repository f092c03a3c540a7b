// The etcd lock's fault tests (docs/scale-out.md#failure-modes), against a real 3-member etcd
// cluster on loopback with shortened timings: TTL 6 s, renew every 1 s, abort deadline 4 s (so the
// abort time and the slack are 1 s each). "Runners" are real processes (tests/helpers/etcd-holder.mjs)
// that take a lock through cc-ci's own code and then act through the same gate as every docker
// call; the janitor is cc-ci's etcdJanitor, in this process, on the members' own ports.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { etcdJanitor } from '../../lib/etcd-lock.js';
import { etcdSettings } from '../../lib/lock-backend.js';
import { type EtcdCluster, type TcpProxy, requireEtcd, startEtcdCluster, startProxy } from '../support/etcd.js';
import { HELPERS, type Helper, cleanup, isGone, startHelper } from '../support/processes.js';

const TTL = 6;
const RENEW = 1;
const ABORT = 4;
const ABORT_TIME = 1;
const TIMINGS = { CCCI_ETCD_LEASE_SECONDS: String(TTL), CCCI_ETCD_RENEW_SECONDS: String(RENEW), CCCI_ETCD_ABORT_SECONDS: String(ABORT) };
/** Scheduling slack for one timing assertion on a loaded 2-core machine. */
const JITTER_MS = 400;

const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const fresh = (what: string): string => `${what}-${randomBytes(4).toString('hex')}`;
/** A run-app domain (the janitor considers no other), unique to this call. */
const app = (): string => `test-${randomBytes(3).toString('hex')}.ci.commoninternet.net`;

interface Event {
  event: string;
  t: number;
  detail: string;
}

function events(helper: Helper): Event[] {
  return helper.lines
    .map((line) => /^([A-Z]+) ([0-9.]+) ?(.*)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ event: m[1]!, t: Number(m[2]), detail: m[3]! }));
}

function last(helper: Helper, event: string): number {
  const found = events(helper).filter((e) => e.event === event);
  return found.length ? found[found.length - 1]!.t : Number.NaN;
}

describe('the app lock on etcd, under faults', { timeout: 180_000 }, () => {
  if (!requireEtcd()) return;
  let cluster: EtcdCluster;
  /** The janitor's view: the members' own ports, never cut. */
  let direct: string[];

  beforeAll(async () => {
    cluster = await startEtcdCluster({ members: 3 });
    direct = cluster.members.map((member) => member.clientUrl);
  }, 60_000);
  afterAll(async () => {
    await cleanup();
    await cluster?.stop();
  });

  /** A runner on `host`, its lock on `domain`, through `endpoints`. */
  function runner(
    id: string,
    domain: string,
    host: string,
    endpoints: string[],
    extra: { env?: NodeJS.ProcessEnv; nodeArgs?: string[] } = {},
  ): Helper {
    return startHelper('etcd-holder.mjs', [id, domain], {
      env: { ...TIMINGS, CCCI_ETCD_ENDPOINTS: endpoints.join(','), CCCI_HOST_ID: host, HOLDER_ACT_MS: '50', ...extra.env },
    });
  }

  /** A janitor on `host` whose discovery lists `apps` and whose teardown removes one, recording when. */
  function janitorOn(host: string, id: string, apps: Set<string>, reaps: { domain: string; t: number; by: string }[]) {
    const settings = etcdSettings({ ...TIMINGS, CCCI_ETCD_ENDPOINTS: direct.join(','), CCCI_HOST_ID: host });
    return () =>
      etcdJanitor({
        settings,
        cluster: id,
        runId: `janitor-${host}`,
        discover: () => [...apps],
        teardown: (domain) => {
          reaps.push({ domain, t: now(), by: host });
          apps.delete(domain);
        },
        log: () => {},
      });
  }

  /** Three proxies of one runner's own, in front of the three members. */
  async function ownProxies(): Promise<(TcpProxy & { url: string })[]> {
    return Promise.all(
      direct.map(async (url) => {
        const proxy = await startProxy(Number(new URL(url).port));
        return Object.assign(proxy, { url: `http://127.0.0.1:${proxy.port}` });
      }),
    );
  }

  // No member is touched here: these run beside each other, each with its own key space.
  describe.concurrent('beside each other', () => {
    it('1: a second host waits, naming the holder, and acquires within 1 s of the first letting go', async () => {
      const id = fresh('c');
      const domain = app();
      const a = runner(id, domain, 'host-a', cluster.endpoints);
      await a.waitFor(/^HELD /, 20_000);
      const b = runner(id, domain, 'host-b', cluster.endpoints);
      const waiting = await b.waitFor(/^LOG .*waiting/, 20_000);
      expect(waiting).toContain(`on host-a, pid ${a.pid}`);
      await sleep(1500);
      expect(events(b).some((e) => e.event === 'HELD')).toBe(false);
      a.child.kill('SIGTERM');
      await a.waitFor(/^RELEASED /, 10_000);
      await b.waitFor(/^HELD /, 10_000);
      const took = last(b, 'HELD') - last(a, 'RELEASED');
      console.log(`etcd 1: the waiter held ${took.toFixed(0)} ms after the holder let go`);
      expect(took).toBeLessThan(1000);
      b.child.kill('SIGTERM');
      await b.exited;
    });

    it('2: a janitor beside a live run for 3 × TTL never acquires and never reaps', async () => {
      const id = fresh('c');
      const domain = app();
      const a = runner(id, domain, 'host-a', cluster.endpoints);
      await a.waitFor(/^HELD /, 20_000);
      const reaps: { domain: string; t: number; by: string }[] = [];
      const sweep = janitorOn('host-b', id, new Set([domain]), reaps);
      const until = now() + 3 * TTL * 1000;
      let sweeps = 0;
      while (now() < until) {
        const report = await sweep();
        expect(report.live).toEqual([domain]);
        sweeps++;
        await sleep(500);
      }
      expect(reaps).toEqual([]);
      expect(sweeps).toBeGreaterThan(10);
      expect(events(a).some((e) => e.event === 'LOST')).toBe(false);
      a.child.kill('SIGTERM');
      await a.exited;
    });

    it('3: after a SIGKILL, no janitor gets the lock before the TTL, and one reaps within TTL + 2 s', async () => {
      const id = fresh('c');
      const domain = app();
      const a = runner(id, domain, 'host-a', cluster.endpoints);
      await a.waitFor(/^HELD /, 20_000);
      await sleep(1200);
      const killedAt = now();
      a.child.kill('SIGKILL');
      const reaps: { domain: string; t: number; by: string }[] = [];
      const apps = new Set([domain]);
      const sweep = janitorOn('host-b', id, apps, reaps);
      while (apps.size > 0 && now() < killedAt + (TTL + 5) * 1000) {
        await sweep();
        await sleep(100);
      }
      expect(reaps).toHaveLength(1);
      const after = reaps[0]!.t - killedAt;
      console.log(`etcd 3: reaped ${(after / 1000).toFixed(2)} s after the SIGKILL (TTL ${TTL} s)`);
      // The last renewal came at most one period before the kill: the lease ends TTL after it.
      expect(after).toBeGreaterThanOrEqual((TTL - RENEW) * 1000 - JITTER_MS);
      expect(after).toBeLessThanOrEqual((TTL + 2) * 1000);
    });

    it('4: a runner cut off silently stops acting before its abort deadline + abort time, and the janitor acts only after the TTL (20 runners)', async () => {
      const id = fresh('c');
      const count = 20;
      const runners = await Promise.all(
        Array.from({ length: count }, async (_, i) => {
          const proxies = await ownProxies();
          const domain = app();
          const helper = runner(
            id,
            domain,
            `host-${i}`,
            proxies.map((proxy) => proxy.url),
            { env: { HOLDER_ACT_MS: '20' } },
          );
          return { domain, proxies, helper };
        }),
      );
      for (const { helper } of runners) await helper.waitFor(/^HELD /, 60_000);
      const apps = new Set(runners.map((r) => r.domain));
      const reaps: { domain: string; t: number; by: string }[] = [];
      const sweep = janitorOn('host-j', id, apps, reaps);
      // Each cut at its own phase of the renewal period.
      const cutAt = new Map<string, number>();
      await Promise.all(
        runners.map(async ({ domain, proxies }) => {
          await sleep(Math.random() * RENEW * 1000);
          for (const proxy of proxies) proxy.cut();
          cutAt.set(domain, now());
        }),
      );
      const deadline = now() + (TTL + 6) * 1000;
      while (apps.size > 0 && now() < deadline) {
        await sweep();
        await sleep(100);
      }
      const acts: number[] = [];
      const janitors: number[] = [];
      for (const { domain, helper, proxies } of runners) {
        await helper.exited;
        acts.push(last(helper, 'ACT') - cutAt.get(domain)!);
        janitors.push((reaps.find((r) => r.domain === domain)?.t ?? Number.NaN) - cutAt.get(domain)!);
        const cut = cutAt.get(domain)!;
        const lastAct = last(helper, 'ACT');
        const reap = reaps.find((r) => r.domain === domain);
        expect(lastAct - cut, `${domain}: last action after the cut`).toBeLessThanOrEqual((ABORT + ABORT_TIME) * 1000);
        expect(reap, `${domain} reaped`).toBeDefined();
        expect(reap!.t, `${domain}: the janitor acts after the runner's last action`).toBeGreaterThan(lastAct);
        expect(reap!.t - cut, `${domain}: the janitor acts after the TTL`).toBeGreaterThanOrEqual((TTL - RENEW) * 1000 - JITTER_MS);
        expect(helper.child.exitCode).toBe(75);
        for (const proxy of proxies) proxy.close();
      }
      console.log(
        `etcd 4 (${count} runners): last action ${(Math.min(...acts) / 1000).toFixed(2)}-${(Math.max(...acts) / 1000).toFixed(2)} s after the cut ` +
          `(limit ${ABORT + ABORT_TIME} s); the janitor's reap ${(Math.min(...janitors) / 1000).toFixed(2)}-${(Math.max(...janitors) / 1000).toFixed(2)} s after it (TTL ${TTL} s)`,
      );
    });

    it('a holder that does not let go is ended by its lock at the abort time, its process group with it', async () => {
      const id = fresh('c');
      const proxies = await ownProxies();
      const helper = runner(
        id,
        app(),
        'host-a',
        proxies.map((proxy) => proxy.url),
        { env: { HOLDER_HANG: '1' } },
      );
      const child = Number((await helper.waitFor(/^CHILD /, 20_000)).split(' ')[2]);
      await sleep(1200);
      for (const proxy of proxies) proxy.cut();
      const { code } = await helper.exited;
      expect(code).toBe(75);
      const lost = events(helper).find((e) => e.event === 'LOST')!.t;
      expect(now() - lost).toBeGreaterThanOrEqual(ABORT_TIME * 1000 - JITTER_MS);
      expect(isGone(child), `its child ${child}`).toBe(true);
      for (const proxy of proxies) proxy.close();
    });

    it('5: a runner paused past its TTL makes no further action and does not re-acquire; a short pause aborts nothing', async () => {
      const id = fresh('c');
      const short = runner(id, app(), 'host-a', cluster.endpoints);
      const long = runner(id, app(), 'host-b', cluster.endpoints);
      await short.waitFor(/^HELD /, 20_000);
      await long.waitFor(/^HELD /, 20_000);
      short.child.kill('SIGSTOP');
      long.child.kill('SIGSTOP');
      await sleep((ABORT / 2) * 1000 - 500);
      short.child.kill('SIGCONT');
      await sleep((TTL + 2) * 1000 - (ABORT / 2) * 1000 + 500);
      const resumedAt = now();
      long.child.kill('SIGCONT');
      await long.exited;
      expect(events(long).filter((e) => e.event === 'ACT' && e.t >= resumedAt)).toEqual([]);
      expect(events(long).filter((e) => e.event === 'HELD')).toHaveLength(1);
      expect(long.child.exitCode).toBe(75);
      await sleep(2000);
      expect(events(short).some((e) => e.event === 'LOST')).toBe(false);
      expect(last(short, 'ACT')).toBeGreaterThan(now() - 1000);
      short.child.kill('SIGTERM');
      await short.exited;
    });

    it('8: five janitors at once over twenty orphans reap each exactly once', async () => {
      const id = fresh('c');
      const apps = new Set(Array.from({ length: 20 }, () => app()));
      const all = [...apps];
      const reaps: { domain: string; t: number; by: string }[] = [];
      await Promise.all(Array.from({ length: 5 }, (_, j) => janitorOn(`host-${j}`, id, apps, reaps)()));
      expect(reaps.map((r) => r.domain).sort()).toEqual(all.sort());
    });

    it('9: Date.now() shifted by an hour either way inside the runner changes nothing in its abort timing', async () => {
      const id = fresh('c');
      for (const shift of [3_600_000, -3_600_000]) {
        const proxies = await ownProxies();
        const helper = runner(
          id,
          app(),
          'host-a',
          proxies.map((proxy) => proxy.url),
          {
            env: { NODE_OPTIONS: `--import=${join(HELPERS, 'shift-clock.mjs')}`, CCCI_TEST_CLOCK_SHIFT_MS: String(shift) },
          },
        );
        await helper.waitFor(/^HELD /, 20_000);
        await sleep(1500);
        const cut = now();
        for (const proxy of proxies) proxy.cut();
        await helper.exited;
        const lost = events(helper).find((e) => e.event === 'LOST')!.t - cut;
        console.log(
          `etcd 9: Date.now() ${shift > 0 ? '+' : '-'}1 h: the lease counted lost ${(lost / 1000).toFixed(2)} s after the cut (deadline ${ABORT} s)`,
        );
        // The last acknowledged renewal was sent at most one period (plus its reply) before the cut.
        expect(lost).toBeGreaterThanOrEqual((ABORT - RENEW) * 1000 - JITTER_MS);
        expect(lost).toBeLessThanOrEqual(ABORT * 1000 + JITTER_MS);
        for (const proxy of proxies) proxy.close();
      }
    });
  });

  // Each of these stops, pauses or restarts members: one at a time, after the others.
  describe('member faults, one at a time', () => {
    it('6: the leader killed, the leader paused 5 s, the runner’s own member restarted: no runner aborts', async () => {
      const id = fresh('c');
      const a = runner(id, app(), 'host-a', cluster.endpoints);
      await a.waitFor(/^HELD /, 20_000);
      const killed = await cluster.leader();
      killed.kill('SIGKILL');
      await sleep(TTL * 1000);
      await killed.restart();
      const paused = await cluster.leader();
      paused.kill('SIGSTOP');
      await sleep(5000);
      paused.kill('SIGCONT');
      await sleep(2000);
      const own = cluster.members[0]!;
      own.kill('SIGKILL');
      await own.restart();
      await sleep(TTL * 1000);
      expect(events(a).filter((e) => e.event === 'LOST' || e.event === 'REFUSED')).toEqual([]);
      expect(last(a, 'ACT')).toBeGreaterThan(now() - 1000);
      a.child.kill('SIGTERM');
      await a.exited;
    });

    it('7: quorum lost past the abort deadline: every runner aborts on time, no janitor gets through, then the keys expire and the apps are reaped', async () => {
      const id = fresh('c');
      const domains = [1, 2, 3].map(() => app());
      const runners = domains.map((domain, i) => runner(id, domain, `host-${i}`, cluster.endpoints));
      for (const helper of runners) await helper.waitFor(/^HELD /, 20_000);
      const apps = new Set(domains);
      const reaps: { domain: string; t: number; by: string }[] = [];
      const sweep = janitorOn('host-j', id, apps, reaps);
      const [, second, third] = cluster.members;
      const lostAt = now();
      second!.kill('SIGKILL');
      third!.kill('SIGKILL');
      const outage = now() + (ABORT + 3) * 1000;
      while (now() < outage) {
        const report = await sweep();
        expect(report.reaped).toEqual([]);
        await sleep(500);
      }
      for (const helper of runners) {
        await helper.exited;
        console.log(`etcd 7: a runner's last action ${((last(helper, 'ACT') - lostAt) / 1000).toFixed(2)} s after quorum was lost`);
        expect(helper.child.exitCode).toBe(75);
        // The leader renews leases on its own until it steps down, one election timeout (1 s) after
        // losing its quorum (etcd's check-quorum): the runner's clock starts at its last such renewal.
        expect(last(helper, 'ACT') - lostAt).toBeLessThanOrEqual((ABORT + ABORT_TIME + 1) * 1000 + JITTER_MS);
      }
      await Promise.all([second!.restart(), third!.restart()]);
      const deadline = now() + (3 * TTL + 10) * 1000;
      while (apps.size > 0 && now() < deadline) {
        await sweep().catch(() => undefined);
        await sleep(250);
      }
      expect(reaps.map((r) => r.domain).sort()).toEqual([...domains].sort());
      console.log(
        `etcd 7: after recovery, all ${domains.length} apps reaped ${((Math.max(...reaps.map((r) => r.t)) - lostAt) / 1000).toFixed(1)} s after the loss`,
      );
    });
  });
});
