// The Python system's convergence rules on the real swarm: a stack has converged when every service
// is N/N and no update is in flight; `updating` is in flight, a `paused` update has settled (swarm
// makes no more progress on it, so waiting for it would only time out).
import { randomBytes } from 'node:crypto';

import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';

import { dockerClient, isConverged } from '../../runner/host/docker.js';
import { IMAGE, requireSwarm } from '../support/swarm.js';

const ready = requireSwarm();
const created: string[] = [];
afterEach(async () => {
  for (const service of created.splice(0)) await execa('docker', ['service', 'rm', service], { reject: false });
});

describe.skipIf(!ready)('convergence on a real swarm', () => {
  it('counts a paused update as settled and an update in progress as not', { timeout: 90_000 }, async () => {
    const stack = `ccciconv${randomBytes(3).toString('hex')}`;
    const service = `${stack}_app`;
    const lines: string[] = [];
    const docker = dockerClient({ log: (line) => lines.push(line) });
    created.push(service);
    await execa('docker', [
      ...['service', 'create', '--name', service, '--detach', '--no-resolve-image', '--replicas', '1'],
      ...['--update-failure-action', 'pause', '--update-monitor', '2s', '--update-order', 'start-first', '--restart-condition', 'none'],
      ...[IMAGE, 'sleep', '3600'],
    ]);
    await docker.waitConverged(stack, 60_000);
    // An update whose new task fails at once: swarm pauses it, the old task keeps running (start-first).
    await execa('docker', ['service', 'update', '--detach', '--no-resolve-image', '--args', "sh -c 'exit 1'", service]);
    const seen = new Set<string>();
    const deadline = Date.now() + 60_000;
    for (;;) {
      const [state] = await docker.services(stack);
      seen.add(state!.update);
      if (state!.update === 'paused') break;
      if (Date.now() > deadline) throw new Error(`the update never paused (saw ${[...seen].join(', ')})`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const [paused] = await docker.services(stack);
    expect(paused).toMatchObject({ running: 1, desired: 1, update: 'paused' });
    const started = Date.now();
    await docker.waitConverged(stack, 10_000);
    expect(Date.now() - started).toBeLessThan(5_000);
    // The same rule on the states swarm drives: those are in flight, the rest have settled.
    for (const update of ['updating', 'rollback_started']) expect(isConverged([{ ...paused!, update }])).toBe(false);
    for (const update of ['paused', 'rollback_paused', 'completed', 'rollback_completed', ''])
      expect(isConverged([{ ...paused!, update }])).toBe(true);
    expect(isConverged([{ ...paused!, running: 0, update: '' }])).toBe(false);
  });
});
