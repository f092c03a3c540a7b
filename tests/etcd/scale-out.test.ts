// Why the etcd backend exists, on the real swarm: two "hosts" (two runners, each its own lock dir
// and CCCI_HOST_ID) share one swarm. Host B's run is SIGKILLed mid-deploy while host A's run is
// live. With etcd, host B's janitor reaps B's app once its lease has run out, and never touches
// A's. With flock, host B's janitor finds no lock for A's app in B's lock dir and reaps the live
// app: asserted, because that is the failure this backend is for (docs/scale-out.md).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

import type { JanitorReport } from '../../lib/janitor.js';
import { stackName } from '../../lib/naming.js';
import { defaultJanitorHooks } from '../../runner/host/discovery.js';
import { dockerClient } from '../../runner/host/docker.js';
import { newerGeneration } from '../../runner/host/generation.js';
import { type EtcdCluster, requireEtcd, startEtcdCluster } from '../support/etcd.js';
import { CLI, type Helper, startCli } from '../support/processes.js';
import { customSleep, domainOf, requireSwarm, useSwarmWorld, type World } from '../support/swarm.js';

const TTL = 6;
const TIMINGS = { CCCI_ETCD_LEASE_SECONDS: String(TTL), CCCI_ETCD_RENEW_SECONDS: '1', CCCI_ETCD_ABORT_SECONDS: '4' };
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('two hosts on one swarm, one run killed', { timeout: 240_000 }, () => {
  const swarm = requireSwarm();
  const etcd = requireEtcd();
  if (!swarm || !etcd) return;
  // useSwarmWorld's cleanup after each test stops what atCleanup() registered, an etcd cluster
  // too: each test that needs one starts its own.
  const newWorld = useSwarmWorld();
  let cluster: EtcdCluster | undefined;

  /** Host `name`'s environment: its own lock dir and host id, the backend's settings. */
  function host(world: World, name: string, backend: 'flock' | 'etcd'): NodeJS.ProcessEnv {
    return {
      ...world.env,
      CCCI_HOST_ID: name,
      CCCI_APP_LOCK_DIR: join(world.locks, name),
      CCCI_LOCK_BACKEND: backend,
      ...(backend === 'etcd' ? { CCCI_ETCD_ENDPOINTS: cluster!.endpoints.join(','), ...TIMINGS } : {}),
    };
  }

  function run(world: World, env: NodeJS.ProcessEnv, id: string, pr: string, holdSeconds: number): Helper {
    return startCli(['run'], {
      env: {
        ...env,
        RECIPE: 'ccci-demo',
        PR: pr,
        CCCI_RUN_ID: id,
        STAGES: 'install,custom',
        ...customSleep(world, id, 'ccci-demo', holdSeconds),
      },
    });
  }

  /** One `cc-ci janitor --json` sweep on a host: its report (stdout; the decision lines go to stderr). */
  async function janitor(env: NodeJS.ProcessEnv): Promise<JanitorReport> {
    const sweep = await execa(process.execPath, [CLI, 'janitor', '--json'], { env, reject: false });
    expect(sweep.exitCode, sweep.stderr).toBe(0);
    return JSON.parse(sweep.stdout) as JanitorReport;
  }

  /** Starts A (live, held in its custom stage) and B, SIGKILLs B's group mid-deploy; resolves when B is dead. */
  async function liveAndKilled(world: World, backend: 'flock' | 'etcd') {
    const a = run(world, host(world, 'host-a', backend), 'a', '1', 60);
    const b = run(world, host(world, 'host-b', backend), 'b', '2', 0);
    await a.waitFor(/app lock held/, 90_000).catch((error: Error) => {
      throw new Error(`${error.message}\n${readFileSync(join(world.runs, 'a', 'run.log'), 'utf8')}`);
    });
    await b.waitFor(/Creating service/, 90_000);
    process.kill(-b.pid, 'SIGKILL');
    await b.exited;
    return { a, killedAt: Date.now(), live: domainOf(world, 'ccci-demo', '1'), dead: domainOf(world, 'ccci-demo', '2') };
  }

  it('cc-ci doctor checks the etcd backend: every endpoint answers and names one leader; a dead endpoint fails', async () => {
    const world = newWorld();
    cluster = await startEtcdCluster({ members: 3 });
    const doctor = async (endpoints: string[]) => {
      const env = { ...host(world, 'host-a', 'etcd'), CCCI_ETCD_ENDPOINTS: endpoints.join(',') };
      const result = await execa(process.execPath, [CLI, 'doctor', '--json'], { env, reject: false });
      return (JSON.parse(result.stdout) as { checks: { name: string; status: string; detail: string }[] }).checks.find(
        (check) => check.name === 'lock backend',
      );
    };
    expect(await doctor(cluster.endpoints)).toMatchObject({
      status: 'pass',
      detail: expect.stringMatching(/^etcd, 3\/3 endpoints answer, one leader; lease 6 s/),
    });
    expect(await doctor(['http://127.0.0.1:9'])).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/^etcd: no endpoint answers/),
    });
  });

  it("etcd: host B's janitor reaps the killed run's app after its lease ran out, and never host A's live one", async () => {
    const world = newWorld();
    cluster = await startEtcdCluster({ members: 3 });
    const { a, killedAt, live, dead } = await liveAndKilled(world, 'etcd');
    const b = host(world, 'host-b', 'etcd');
    let reapedAt: number | null = null;
    while (reapedAt === null && Date.now() < killedAt + (TTL + 20) * 1000) {
      const report = await janitor(b);
      expect(report.reaped).not.toContain(live);
      expect(report.live).toContain(live);
      if (report.reaped.includes(dead)) reapedAt = Date.now();
      else expect(report.live).toContain(dead); // its key lives as long as its lease
      await sleep(500);
    }
    expect(reapedAt).not.toBeNull();
    // The dead run renewed at most one period before its kill; a sweep takes a moment to start.
    expect(reapedAt! - killedAt).toBeGreaterThanOrEqual((TTL - 1) * 1000 - 400);
    console.log(
      `scale-out etcd: the killed run's app reaped ${((reapedAt! - killedAt) / 1000).toFixed(1)} s after the kill (TTL ${TTL} s)`,
    );
    // A's services carry its generation; a janitor's teardown with an older one leaves them alone.
    await a.waitFor(/== deployed /, 60_000);
    const generation = /== app lock held: \S+ \(etcd, generation ([0-9]+)\) ==/.exec(a.output())![1]!;
    expect(await newerGeneration(dockerClient({ log: () => {} }), stackName(live), '1')).toBe(generation);
    expect(await newerGeneration(dockerClient({ log: () => {} }), stackName(live), generation)).toBeNull();
    await expect(defaultJanitorHooks({ log: () => {} }).teardown(live, '1')).rejects.toMatchObject({ code: 'ERR_CCCI_NEWER_GENERATION' });
    expect(await world.leftovers()).not.toEqual([]);
    a.child.kill('SIGTERM'); // enough shown: A tears down and lets go
    expect((await a.exited).code).toBe(143);
    expect(await world.leftovers(), a.output()).toEqual([]);
    // Its generation, the fencing token, is in its results as in its log.
    const results = JSON.parse(readFileSync(join(world.runs, 'a', 'results.json'), 'utf8')) as { lock: unknown };
    expect(results.lock).toEqual({ backend: 'etcd', generations: { [live]: generation } });
  });

  it("flock: host B's janitor sees no lock for host A's live app in its own lock dir, and reaps it", async () => {
    const world = newWorld();
    const { a, live, dead } = await liveAndKilled(world, 'flock');
    const report = await janitor(host(world, 'host-b', 'flock'));
    expect(report.reaped).toContain(dead);
    expect(report.reaped).toContain(live); // the failure: a live run's app torn down under it
    a.child.kill('SIGTERM');
    await a.exited;
  });
});
