// lib/etcd.ts against a real 3-member etcd cluster on loopback (tests/support/etcd.ts): the lease
// calls, create-if-absent and its holder, a watch woken by a revoke, aborts, and failover when a
// member's client port goes silent. A fresh cluster per test (about 0.5 s): a fault in one test
// never reaches the next, and cleanup() leaves no member and no tmpfs dir even when a test fails.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { EtcdClient, EtcdError, prefixEnd } from '../../lib/etcd.js';
import { requireEtcd, startEtcdCluster, type EtcdCluster } from '../support/etcd.js';
import { ROOT, cleanup, eventually, isGone, startProcess } from '../support/processes.js';

const available = requireEtcd();

/** How long `promise` takes to settle, and how. */
async function timed<T>(promise: Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const start = performance.now();
  try {
    const value = await promise;
    return { ms: performance.now() - start, value };
  } catch (error) {
    return { ms: performance.now() - start, error };
  }
}

describe.skipIf(!available)('the etcd client', () => {
  let cluster: EtcdCluster;
  const client = async (timeoutMs = 1000): Promise<EtcdClient> => {
    cluster = await startEtcdCluster();
    return new EtcdClient({ endpoints: cluster.endpoints, timeoutMs });
  };
  afterEach(cleanup);

  it('grants a lease, renews it once, reads its TTL and revokes it (a second revoke resolves too)', async () => {
    const etcd = await client();
    const lease = await etcd.grant(5);
    expect(lease.id).toMatch(/^[1-9][0-9]*$/);
    expect(lease.ttl).toBe(5);
    expect(await etcd.keepAliveOnce(lease.id)).toBe(5);
    expect(await etcd.timeToLive(lease.id)).toBeGreaterThanOrEqual(4);
    await etcd.revoke(lease.id);
    expect(await etcd.timeToLive(lease.id)).toBe(-1);
    expect(await etcd.keepAliveOnce(lease.id)).toBe(0);
    await etcd.revoke(lease.id);
  });

  it('a lease without renewals expires after its TTL (2 s), and its key goes with it', async () => {
    const etcd = await client();
    const lease = await etcd.grant(2);
    const start = performance.now();
    expect((await etcd.createIfAbsent('ttl/key', 'x', lease.id)).created).toBe(true);
    await eventually(async () => (await etcd.timeToLive(lease.id)) === -1, 6000, 'the lease to expire');
    const ms = performance.now() - start;
    // The leader checks expiry every 500 ms: gone no sooner than the TTL, and not much later.
    expect(ms).toBeGreaterThan(1900);
    expect(ms).toBeLessThan(4000);
    expect(await etcd.get('ttl/key')).toBeNull();
    expect(await etcd.keepAliveOnce(lease.id)).toBe(0);
  });

  it('createIfAbsent: the first call creates the key, the second sees the holder, its lease and create revision', async () => {
    const etcd = await client();
    const first = await etcd.grant(30);
    const second = await etcd.grant(30);
    const created = await etcd.createIfAbsent('locks/app', 'run-1', first.id);
    expect(created).toEqual({ created: true, revision: expect.stringMatching(/^[1-9][0-9]*$/) });
    const taken = await etcd.createIfAbsent('locks/app', 'run-2', second.id);
    expect(taken).toEqual({
      created: false,
      revision: created.revision,
      holder: { key: 'locks/app', value: 'run-1', createRevision: created.revision, modRevision: created.revision, lease: first.id },
    });
    expect(await etcd.get('locks/app')).toEqual(taken.created ? null : taken.holder);
    // A retry of the first call (its answer lost on one endpoint, applied) finds its own key: created.
    expect(await etcd.createIfAbsent('locks/app', 'run-1', first.id)).toEqual({ created: true, revision: created.revision });
  });

  it('a key on no lease has lease 0; a lease that does not exist is a gRPC not-found EtcdError', async () => {
    const etcd = await client();
    expect(await etcd.createIfAbsent('plain', 'v', '0')).toMatchObject({ created: true });
    expect((await etcd.get('plain'))?.lease).toBe('0');
    const error = (await timed(etcd.createIfAbsent('leased', 'v', '12345'))).error;
    expect(error).toBeInstanceOf(EtcdError);
    expect(error).toMatchObject({ code: 'ERR_CCCI_ETCD', grpcCode: 5, message: expect.stringMatching(/lease not found/) });
    expect(await etcd.timeToLive('12345')).toBe(-1);
    await etcd.revoke('12345');
  });

  it('a revoke deletes the key and wakes a watchDelete within 100 ms', async () => {
    const etcd = await client();
    const lease = await etcd.grant(30);
    const created = await etcd.createIfAbsent('locks/watched', 'holder', lease.id);
    expect(created.created).toBe(true);
    let woken = 0;
    const watch = etcd.watchDelete('locks/watched', created.revision, AbortSignal.timeout(5000)).then(() => (woken = performance.now()));
    await new Promise((r) => setTimeout(r, 300)); // the watch is created and quiet
    expect(woken).toBe(0);
    await etcd.revoke(lease.id);
    const revoked = performance.now();
    await watch;
    expect(woken - revoked).toBeLessThan(100);
    expect(await etcd.get('locks/watched')).toBeNull();
    // A delete already past at fromRevision wakes a new watch at once.
    const past = await timed(etcd.watchDelete('locks/watched', created.revision, AbortSignal.timeout(5000)));
    expect(past.error).toBeUndefined();
    expect(past.ms).toBeLessThan(200);
  });

  it('watchDelete rejects with the abort reason at once, and a put of its key does not wake it', async () => {
    const etcd = await client();
    const lease = await etcd.grant(30);
    const before = await etcd.createIfAbsent('locks/other', 'x', lease.id);
    const controller = new AbortController();
    const watch = timed(etcd.watchDelete('locks/held', before.revision, controller.signal));
    expect((await etcd.createIfAbsent('locks/held', 'holder', lease.id)).created).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    const reason = new Error('the run ended');
    const aborted = performance.now();
    controller.abort(reason);
    const { error, ms } = await watch;
    expect(error).toBe(reason);
    expect(ms).toBeGreaterThan(150); // the put did not wake it
    expect(performance.now() - aborted).toBeLessThan(50);
    // An already-aborted signal: rejected before any request.
    await expect(etcd.get('locks/held', AbortSignal.abort(reason))).rejects.toBe(reason);
  });

  it('lists every key with a prefix, in key order, and nothing outside it', async () => {
    const etcd = await client();
    for (const key of ['jobs/b', 'jobs/a', 'jobs/c/d', 'jobsx', 'job', 'jobs']) await etcd.createIfAbsent(key, key.toUpperCase(), '0');
    const listed = await etcd.list('jobs/');
    expect(listed.map((kv) => [kv.key, kv.value])).toEqual([
      ['jobs/a', 'JOBS/A'],
      ['jobs/b', 'JOBS/B'],
      ['jobs/c/d', 'JOBS/C/D'],
    ]);
    expect(await etcd.list('nothing/')).toEqual([]);
    expect(prefixEnd(Buffer.from([0x61, 0xff]))).toEqual(Buffer.from([0x62]));
    expect(prefixEnd(Buffer.from([0xff]))).toEqual(Buffer.from([0]));
  });

  it('members() and status() describe the cluster: three members, one leader all agree on', async () => {
    const etcd = await client();
    const members = await etcd.members();
    expect(members.map((m) => m.name).sort()).toEqual(['m0', 'm1', 'm2']);
    expect(members.flatMap((m) => m.clientURLs).sort()).toEqual(cluster.members.map((m) => m.clientUrl).sort());
    const statuses = await Promise.all(cluster.endpoints.map((endpoint) => etcd.status(endpoint)));
    expect(new Set(statuses.map((s) => s.leader)).size).toBe(1);
    expect(statuses.map((s) => s.version)).toEqual(['3.4.23', '3.4.23', '3.4.23']);
    const leader = await cluster.leader();
    const leaderStatus = statuses[cluster.members.indexOf(leader)]!;
    expect(leaderStatus.memberId).toBe(leaderStatus.leader);
  });

  it("with member 0's proxy cut, calls go to the others within one per-call deadline, then straight there", async () => {
    const etcd = await client(1000);
    const lease = await etcd.grant(30); // answered by member 0: the client starts there next time
    cluster.members[0]!.cut();
    const first = await timed(etcd.createIfAbsent('failover/key', 'v', lease.id));
    expect(first.error).toBeUndefined();
    expect(first.ms).toBeGreaterThan(950);
    expect(first.ms).toBeLessThan(1800);
    // The last good endpoint is remembered: the next calls do not wait on member 0 again.
    for (const call of [etcd.keepAliveOnce(lease.id), etcd.get('failover/key'), etcd.timeToLive(lease.id), etcd.grant(5)]) {
      const { ms, error } = await timed(call);
      expect(error).toBeUndefined();
      expect(ms).toBeLessThan(300);
    }
    cluster.members[0]!.heal();
  });

  it('with the first endpoint killed (connection refused), the next member answers at once', async () => {
    cluster = await startEtcdCluster();
    // A follower: killing the leader would add an election to the wait.
    const leader = await cluster.leader();
    const victim = cluster.members.find((m) => m !== leader)!;
    const etcd = new EtcdClient({
      endpoints: [victim.proxyUrl, ...cluster.endpoints.filter((e) => e !== victim.proxyUrl)],
      timeoutMs: 1000,
    });
    victim.kill('SIGKILL');
    await eventually(() => isGone(victim.pid), 5000, 'the member to die');
    const { ms, value } = await timed(etcd.grant(10));
    expect(value?.ttl).toBe(10);
    expect(ms).toBeLessThan(500);
  });

  it('with every proxy cut, a call fails with an EtcdError naming each endpoint, after about timeoutMs × endpoints', async () => {
    const etcd = await client(500);
    await etcd.grant(5);
    for (const member of cluster.members) member.cut();
    const { ms, error } = await timed(etcd.get('any'));
    expect(error).toBeInstanceOf(EtcdError);
    expect((error as EtcdError).code).toBe('ERR_CCCI_ETCD');
    for (const endpoint of cluster.endpoints) expect((error as Error).message).toContain(`${endpoint}: no answer within 500 ms`);
    expect(ms).toBeGreaterThan(1450);
    expect(ms).toBeLessThan(2500);
    // Healed, the same client answers again.
    for (const member of cluster.members) member.heal();
    expect(await etcd.get('any')).toBeNull();
  });

  it('an abort while every endpoint is silent rejects with its reason at once, never retried', async () => {
    const etcd = await client(1000);
    for (const member of cluster.members) member.cut();
    const controller = new AbortController();
    const reason = new Error('stop');
    setTimeout(() => controller.abort(reason), 200);
    const { ms, error } = await timed(etcd.keepAliveOnce('1', controller.signal));
    expect(error).toBe(reason);
    expect(ms).toBeLessThan(400);
  });

  it('a process whose client is idle exits at once: no deadline timer or kept-alive socket holds it', async () => {
    cluster = await startEtcdCluster();
    const script = `
      const { EtcdClient } = await import(${JSON.stringify(join(ROOT, 'dist', 'lib', 'etcd.js'))});
      const etcd = new EtcdClient({ endpoints: ${JSON.stringify(cluster.endpoints)}, timeoutMs: 3000 });
      const lease = await etcd.grant(5);
      await etcd.keepAliveOnce(lease.id);
      const controller = new AbortController();
      const watch = etcd.watchDelete('k', '1', controller.signal).catch(() => {});
      controller.abort();
      await watch;
      console.log('idle');`;
    const child = startProcess(process.execPath, ['--input-type=module', '-e', script]);
    await child.waitFor('idle', 10_000);
    const idle = performance.now();
    expect((await child.exited).code).toBe(0);
    expect(performance.now() - idle).toBeLessThan(1000); // a 3 s deadline left set would hold it
  });

  it('cleanup leaves no member process and no tmpfs dir', async () => {
    cluster = await startEtcdCluster();
    const pids = cluster.members.map((m) => m.pid);
    expect(existsSync(cluster.dir)).toBe(true);
    await cleanup();
    expect(pids.filter((pid) => !isGone(pid))).toEqual([]);
    expect(existsSync(cluster.dir)).toBe(false);
  });
});
