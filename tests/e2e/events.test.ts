// The runner's waits on the real swarm: they wake on the Engine's events (docs/concurrency.md#9-waits),
// survive an event stream that dies mid-wait, and a stack's network that a stopping task still uses
// is removed before its networks count as settled.
import { randomBytes } from 'node:crypto';
import { createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';

import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';

import { dockerClient } from '../../runner/host/docker.js';
import { timings } from '../../runner/host/timings.js';
import { cleanup, tempDir } from '../support/processes.js';
import { IMAGE, requireSwarm } from '../support/swarm.js';

const ready = requireSwarm();
const stacks: string[] = [];
afterEach(async () => {
  for (const stack of stacks.splice(0)) {
    const quiet = { reject: false } as const;
    const services = (await execa('docker', ['service', 'ls', '-q', '--filter', `name=${stack}_`], quiet)).stdout
      .split('\n')
      .filter(Boolean);
    if (services.length) await execa('docker', ['service', 'rm', ...services], quiet);
    await dockerClient({ log: () => undefined }).removeLeftovers(stack);
  }
  await cleanup();
}, 90_000);

function newStack(): string {
  const stack = `ccciev${randomBytes(3).toString('hex')}`;
  stacks.push(stack);
  return stack;
}

/** `docker service create` of one detached service of `stack`, labelled as `docker stack deploy` would. */
async function createService(stack: string, options: { grace?: string; extra?: string[] } = {}): Promise<void> {
  const label = `com.docker.stack.namespace=${stack}`;
  await execa('docker', [
    ...['service', 'create', '--detach', '--no-resolve-image', '--name', `${stack}_app`],
    ...['--label', label, '--container-label', label, '--stop-grace-period', options.grace ?? '1s', ...(options.extra ?? [])],
    ...[IMAGE, 'sleep', '3600'],
  ]);
}

const reactions = (): number => timings.report().reaction.events;

/** A unix socket that forwards to the Engine's, and can cut every connection it carries. */
async function engineProxy(): Promise<{ path: string; requests: string[]; cut(): void; close(): Promise<void> }> {
  const path = join(tempDir('ccci-engine-proxy-'), 'docker.sock');
  const open = new Set<Socket>();
  const requests: string[] = [];
  const server = createServer((client) => {
    const engine = createConnection('/var/run/docker.sock');
    for (const socket of [client, engine]) {
      open.add(socket);
      socket.on('close', () => open.delete(socket));
      socket.on('error', () => undefined);
    }
    client.once('data', (chunk) => requests.push(chunk.toString('latin1').split('\r\n')[0]!));
    client.pipe(engine).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const cut = (): void => {
    for (const socket of open) socket.destroy();
  };
  const close = (): Promise<void> => {
    cut();
    return new Promise((resolve) => server.close(() => resolve()));
  };
  return { path, requests, cut, close };
}

describe.skipIf(!ready)('waits on the real swarm', () => {
  it("wakes on docker's events: convergence, then removal", { timeout: 60_000 }, async () => {
    const stack = newStack();
    const docker = dockerClient({ log: () => undefined });
    const before = reactions();
    await createService(stack);
    await docker.waitConverged(stack, 30_000);
    // The wait began before the task ran, so an event (not its first check) ended it.
    expect(reactions()).toBeGreaterThan(before);
    const converged = reactions();
    await execa('docker', ['service', 'rm', `${stack}_app`]);
    await docker.removeStack(stack);
    expect(reactions()).toBeGreaterThan(converged);
    expect(await docker.services(stack)).toEqual([]);
    const spans = timings.report().spans.map((span) => span.name);
    expect(spans).toEqual(expect.arrayContaining([`wait converged ${stack}`, `wait removed ${stack}`]));
  });

  it('a stream that dies mid-wait is reopened from its last event, and the wait ends on an event it brings', {
    timeout: 60_000,
  }, async () => {
    const proxy = await engineProxy();
    const saved = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = `unix://${proxy.path}`;
    try {
      const stack = newStack();
      const docker = dockerClient({ log: () => undefined });
      const waiting = docker.waitConverged(stack, 45_000);
      const streams = () => proxy.requests.filter((line) => line.startsWith('GET /events?'));
      for (let i = 0; i < 100 && streams().length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(streams()).toHaveLength(1);
      proxy.cut();
      // Nothing can end the wait yet: it polls until the stream is back, which it is within a second or two.
      for (let i = 0; i < 100 && streams().length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(streams()).toHaveLength(2);
      const before = reactions();
      await createService(stack);
      await waiting;
      expect(reactions()).toBeGreaterThan(before);
      const since = (line: string): number => Number(/since=([0-9.]+)/.exec(line)![1]);
      expect(since(streams()[1]!)).toBeGreaterThanOrEqual(since(streams()[0]!));
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = saved;
      await proxy.close();
    }
  });

  it('a network still in use by a stopping task is removed, and settled only once the task is gone', { timeout: 90_000 }, async () => {
    const stack = newStack();
    const network = `${stack}_internal`;
    const label = `com.docker.stack.namespace=${stack}`;
    await execa('docker', ['network', 'create', '--driver', 'overlay', '--label', label, network]);
    // `sleep` ignores SIGTERM: its task holds the network for the whole grace period after `service rm`.
    await createService(stack, { grace: '5s', extra: ['--network', network] });
    const lines: string[] = [];
    const docker = dockerClient({ log: (line) => lines.push(line) });
    await docker.waitConverged(stack, 30_000);
    await execa('docker', ['service', 'rm', `${stack}_app`]);
    await docker.removeLeftovers(stack);
    expect((await execa('docker', ['network', 'ls', '-q', '--filter', `name=${network}`])).stdout).toBe('');
    const tasks = await execa('docker', ['stack', 'ps', stack, '-q'], { reject: false });
    expect(tasks.stderr).toMatch(/nothing found in stack/);
    expect(lines.join('\n')).toContain(`removing networks of ${stack}: ${network}`);
  });
});
