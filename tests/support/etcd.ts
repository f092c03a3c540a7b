// A real etcd cluster on loopback for the tests of lib/etcd.ts and the lock built on it: members of
// the packaged etcd (3.4, .ci/setup-tools.sh) on free ports, a static --initial-cluster bootstrap,
// data on tmpfs, short heartbeat and election so that faults resolve in about a second.
//
// Each member's client port sits behind a TCP proxy in the test process; runners use the proxy URLs.
// cut() makes a proxy stop forwarding without closing anything (no FIN, no RST): a silent partition,
// which a client notices only by its own deadline. heal() forwards again, what was held included.
//
// Members are tracked helpers (tests/support/processes.ts) and the cluster registers its stop()
// with atCleanup(): processes.ts cleanup() leaves nothing behind even when a test fails. So a file
// that calls cleanup() after each test (useHelpers) must start its cluster in each test; a file
// that shares one cluster starts it in beforeAll and stops it in afterAll.
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, Socket, type Server } from 'node:net';
import { join } from 'node:path';

import { it } from 'vitest';

import { atCleanup, startProcess, type Helper } from './processes.js';

/** The packaged etcd (Debian etcd-server). */
export const ETCD = '/usr/bin/etcd';

export interface EtcdMember {
  name: string;
  /** The member's own client URL (tests that must bypass the proxy). */
  clientUrl: string;
  /** The proxy's URL: what runners use. */
  proxyUrl: string;
  /** The member's current process (a restart changes it). */
  readonly pid: number;
  /** Sends `signal` to the member's process (SIGKILL, SIGSTOP, SIGCONT, ...). */
  kill(signal: NodeJS.Signals): void;
  /** Starts the member again on its data dir and ports (SIGKILLs it first if it still runs); resolves once it answers. */
  restart(): Promise<void>;
  /** The proxy silently stops forwarding in both directions; connections stay open. */
  cut(): void;
  heal(): void;
  /** The last lines of the member's log. */
  logTail(lines?: number): string;
}

export interface EtcdCluster {
  members: EtcdMember[];
  /** The proxy URLs. */
  endpoints: string[];
  /** The cluster's tmpfs dir (/dev/shm/ccci-etcd-XXXXXX): each member's data dir and log; removed by stop(). */
  dir: string;
  /** The member the others follow now (waits out an election, up to 10 s). */
  leader(): Promise<EtcdMember>;
  /** Kills members and proxies, removes the data; idempotent. */
  stop(): Promise<void>;
}

/** Why this machine cannot start etcd, or null when it can. */
export function etcdUnavailable(): string | null {
  try {
    accessSync(ETCD, constants.X_OK);
    return null;
  } catch (error) {
    return `${ETCD} is not runnable (${(error as Error).message})`;
  }
}

/** Under CI a missing etcd is a failure, never a skip. Returns true when the suite can run. */
export function requireEtcd(): boolean {
  const unavailable = etcdUnavailable();
  if (unavailable && process.env.CI) {
    it('has etcd to run against (required under CI)', () => {
      throw new Error(`${unavailable}: run .ci/setup-tools.sh before the suite`);
    });
  }
  return unavailable === null;
}

const START_ATTEMPTS = 3;
const HEALTHY_MS = 20_000;

/** Starts a cluster of `members` (3) and waits until it serves a put and a linearizable read on every member. */
export async function startEtcdCluster(options: { members?: number } = {}): Promise<EtcdCluster> {
  const size = options.members ?? 3;
  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const cluster = await launch(size);
    try {
      await cluster.healthy();
      return cluster.api;
    } catch (error) {
      lastError = error;
      const logs = cluster.api.members.map((m) => `--- ${m.name} ---\n${m.logTail(30)}`).join('\n');
      await cluster.api.stop();
      // Another process took one of the ports between our probe and etcd's bind: pick again.
      if (!/address already in use/.test(logs))
        throw new Error(`etcd cluster did not become healthy: ${(error as Error).message}\n${logs}`);
    }
  }
  throw new Error(`etcd cluster: ports kept being taken (${(lastError as Error).message})`);
}

async function launch(size: number): Promise<{ api: EtcdCluster; healthy: () => Promise<void> }> {
  // tmpfs: fsyncs cost nothing, and a leftover lives only until reboot; mkdtemp makes it 0700.
  const root = mkdtempSync('/dev/shm/ccci-etcd-');
  const token = `ccci-${root.slice(-6)}`;
  const ports = await freePorts(size * 2);
  const specs = Array.from({ length: size }, (_, i) => ({
    name: `m${i}`,
    clientUrl: `http://127.0.0.1:${ports[2 * i]}`,
    peerUrl: `http://127.0.0.1:${ports[2 * i + 1]}`,
    dataDir: join(root, `m${i}`),
    log: join(root, `m${i}.log`),
  }));
  const initialCluster = specs.map((s) => `${s.name}=${s.peerUrl}`).join(',');

  const proxies: TcpProxy[] = [];
  const members: EtcdMember[] = [];
  /** Each member's current process (a restart replaces it). */
  const processes: Helper[] = [];
  let stopped = false;

  for (const [i, spec] of specs.entries()) {
    const args = [
      `--name=${spec.name}`,
      `--data-dir=${spec.dataDir}`,
      `--listen-client-urls=${spec.clientUrl}`,
      `--advertise-client-urls=${spec.clientUrl}`,
      `--listen-peer-urls=${spec.peerUrl}`,
      `--initial-advertise-peer-urls=${spec.peerUrl}`,
      `--initial-cluster=${initialCluster}`,
      '--initial-cluster-state=new',
      `--initial-cluster-token=${token}`,
      // Faults resolve in about a second: a leader is suspected after 1 s of silence.
      '--heartbeat-interval=100',
      '--election-timeout=1000',
      '--logger=zap',
      `--log-outputs=${spec.log}`,
    ];
    processes[i] = startProcess(ETCD, args, { cwd: root });
    const proxy = await startProxy(Number(new URL(spec.clientUrl).port));
    proxies.push(proxy);
    members.push({
      name: spec.name,
      clientUrl: spec.clientUrl,
      proxyUrl: `http://127.0.0.1:${proxy.port}`,
      get pid() {
        return processes[i]!.pid;
      },
      kill: (signal) => process.kill(processes[i]!.pid, signal),
      restart: async () => {
        if (stopped) throw new Error(`etcd member ${spec.name}: the cluster is stopped`);
        killGroup(processes[i]!.pid, 'SIGKILL');
        await processes[i]!.exited;
        processes[i] = startProcess(ETCD, args, { cwd: root });
        await waitFor(() => answers(spec.clientUrl), 10_000, `etcd member ${spec.name} to answer after its restart`);
      },
      cut: () => proxy.cut(),
      heal: () => proxy.heal(),
      logTail: (lines = 40) =>
        existsSync(spec.log) ? readFileSync(spec.log, 'utf8').trimEnd().split('\n').slice(-lines).join('\n') : '(no log)',
    });
  }
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    unregister();
    for (const proxy of proxies) proxy.close();
    for (const helper of processes) killGroup(helper.pid, 'SIGKILL');
    await Promise.all(processes.map((helper) => helper.exited));
    rmSync(root, { recursive: true, force: true });
  };
  const unregister = atCleanup(stop);

  const api: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.proxyUrl),
    dir: root,
    leader: async () => {
      let found: EtcdMember | undefined;
      await waitFor(
        async () => {
          const statuses = await Promise.all(members.map((m) => status(m.clientUrl)));
          const leaderId = statuses.find((s) => s && s.leader !== '0')?.leader;
          const index = statuses.findIndex((s) => s?.memberId === leaderId);
          found = index >= 0 ? members[index] : undefined;
          return found !== undefined;
        },
        10_000,
        'an etcd leader',
      );
      return found!;
    },
    stop,
  };

  const healthy = async (): Promise<void> => {
    await waitFor(
      async () => {
        const dead = processes.find((helper) => helper.child.exitCode !== null || helper.child.signalCode !== null);
        if (dead) throw new Error(`etcd ${dead.pid} exited`);
        const put = await gateway(api.endpoints[0]!, '/v3/kv/put', { key: b64('ccci-harness/health'), value: b64(root) });
        if (!put) return false;
        // A linearizable read on every member: each is in the quorum and sees the put.
        const reads = await Promise.all(members.map((m) => gateway(m.clientUrl, '/v3/kv/range', { key: b64('ccci-harness/health') })));
        return reads.every((read) => (read?.kvs as { value?: string }[] | undefined)?.[0]?.value === b64(root));
      },
      HEALTHY_MS,
      'the etcd cluster to serve a put and a read on every member',
    );
  };
  return { api, healthy };
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, signal);
    } catch {
      // already gone
    }
  }
}

/**
 * `count` distinct free loopback ports: each bound on :0 and closed again (etcd binds them a moment
 * later; startEtcdCluster picks again if one was taken meanwhile). Never etcd's 2379/2380.
 */
async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    if (port !== 2379 && port !== 2380) ports.add(port);
  }
  return [...ports];
}

export interface TcpProxy {
  port: number;
  cut(): void;
  heal(): void;
  close(): void;
}

/** One forwarded connection: bytes each way, held while cut. */
interface Pair {
  sockets: Socket[];
  held: Map<Socket, (Buffer | null)[]>;
}

/**
 * A TCP proxy to `target` on a free loopback port. While cut, it stops reading both sides of every
 * connection (new ones too): the peers see an open connection that carries nothing, and what they
 * sent arrives after heal(), as TCP would deliver it after a partition ends.
 */
export async function startProxy(target: number): Promise<TcpProxy> {
  let cut = false;
  const pairs = new Set<Pair>();
  const server: Server = createServer((client) => {
    const upstream = new Socket();
    const pair: Pair = {
      sockets: [client, upstream],
      held: new Map([
        [client, []],
        [upstream, []],
      ]),
    };
    pairs.add(pair);
    const forward = (from: Socket, to: Socket): void => {
      from.on('data', (chunk: Buffer) => {
        if (cut) {
          pair.held.get(from)!.push(chunk);
          from.pause();
        } else if (!to.write(chunk)) {
          from.pause();
          to.once('drain', () => cut || from.resume());
        }
      });
      from.on('end', () => (cut ? pair.held.get(from)!.push(null) : to.end()));
    };
    forward(client, upstream);
    forward(upstream, client);
    for (const socket of pair.sockets) {
      socket.on('error', () => undefined);
      socket.on('close', () => {
        pairs.delete(pair);
        for (const other of pair.sockets) other.destroy();
      });
      if (cut) socket.pause();
    }
    upstream.connect(target, '127.0.0.1');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    cut: () => {
      cut = true;
      for (const pair of pairs) for (const socket of pair.sockets) socket.pause();
    },
    heal: () => {
      cut = false;
      for (const pair of pairs) {
        const [a, b] = pair.sockets as [Socket, Socket];
        for (const [from, to] of [
          [a, b],
          [b, a],
        ] as const) {
          for (const chunk of pair.held.get(from)!.splice(0)) {
            if (chunk === null) to.end();
            else to.write(chunk);
          }
          from.resume();
        }
      }
    },
    close: () => {
      server.close();
      for (const pair of pairs) for (const socket of pair.sockets) socket.destroy();
      pairs.clear();
    },
  };
}

/** POST to the gateway with a short deadline: the answer's JSON, or null on any failure. */
async function gateway(url: string, path: string, body: unknown): Promise<Record<string, unknown> | null> {
  try {
    const response = await fetch(`${url}${path}`, { method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(1000) });
    if (!response.ok) return null;
    return (await response.json()) as Record<string, unknown>;
  } catch {
    return null;
  }
}

async function status(url: string): Promise<{ leader: string; memberId: string } | null> {
  const answer = await gateway(url, '/v3/maintenance/status', {});
  if (!answer) return null;
  return {
    leader: String(answer.leader ?? '0'),
    memberId: String((answer.header as { member_id?: string } | undefined)?.member_id ?? '0'),
  };
}

async function answers(url: string): Promise<boolean> {
  return (await status(url)) !== null;
}

async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}
