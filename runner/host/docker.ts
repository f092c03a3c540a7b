// The docker CLI, as the runner uses it: what a stack owns (services, volumes, secrets,
// containers), whether its services have converged, and the primitives teardown falls back on.
import { setTimeout as sleep } from 'node:timers/promises';

import { CcciError, InputError } from '../../lib/errors.js';
import { exec } from './exec.js';
import type { Log } from './log.js';

export interface DockerContext {
  log: Log;
  signal?: AbortSignal;
}

export type ResourceKind = 'service' | 'volume' | 'secret' | 'network' | 'container';

export interface ServiceState {
  name: string;
  running: number;
  desired: number;
  /** The swarm update state, '' when the service was never updated. */
  update: string;
}

/** Update states swarm is actively driving; `paused` and the rest make no progress and count as settled. */
const ACTIVE_UPDATE_STATES = new Set(['updating', 'rollback_started']);

/** N/N replicas everywhere and no update in flight. */
export function isConverged(services: ServiceState[]): boolean {
  return services.every((s) => s.running === s.desired && !ACTIVE_UPDATE_STATES.has(s.update));
}

/** Parses `docker service ls --format '{{.Name}} {{.Replicas}}'` lines (`app 1/1`, `job 0/1 (max 1 per node)`). */
export function parseReplicas(text: string): Map<string, { running: number; desired: number }> {
  const replicas = new Map<string, { running: number; desired: number }>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const match = /^(\S+)\s+(\d+)\/(\d+)/.exec(line.trim());
    if (!match) throw new InputError(`unparseable docker service ls line: ${JSON.stringify(line)}`);
    replicas.set(match[1]!, { running: Number(match[2]), desired: Number(match[3]) });
  }
  return replicas;
}

export interface Docker {
  /** Names of the stack's resources of one kind (by the `<stack>_` name prefix). */
  names(kind: ResourceKind, stack: string): Promise<string[]>;
  services(stack: string): Promise<ServiceState[]>;
  /** Waits until the stack has services and they have converged; throws after `timeoutMs`. */
  waitConverged(stack: string, timeoutMs: number): Promise<void>;
  /** Waits until no container with a healthcheck is starting or unhealthy. */
  waitHealthy(stack: string, timeoutMs: number): Promise<void>;
  /** A running container of the stack's service, for exec. */
  container(stack: string, service?: string): Promise<string | null>;
  execIn(container: string, command: string[]): Promise<string>;
  /** The first volume mount point of a container, or null when it has none. */
  volumeMount(container: string): Promise<string | null>;
  removeStack(stack: string): Promise<void>;
  /** Removes the stack's volumes, secrets and networks (call once its containers are gone). */
  removeLeftovers(stack: string): Promise<void>;
  /** The version abra labels the stack's services with (`coop-cloud.<stack>.version`), or null. */
  deployedVersion(stack: string): Promise<string | null>;
  /** The image of the stack's first service (to copy its volumes with), or null. */
  serviceImage(stack: string): Promise<string | null>;
  /** Copies a volume's files into `<dir>/<file>` (a tar), through a throwaway container of `image`. */
  saveVolume(volume: string, image: string, dir: string, file: string): Promise<void>;
  /** Replaces a volume's files with those of `<dir>/<file>`. */
  loadVolume(volume: string, image: string, dir: string, file: string): Promise<void>;
}

const POLL_MS = 1_000;
const NETWORK_SETTLE_MS = 60_000;

export function dockerClient(context: DockerContext): Docker {
  const docker = async (args: string[], timeoutMs = 120_000): Promise<string> =>
    (await exec('docker', args, { signal: context.signal, log: context.log, quiet: true, timeoutMs, tag: '[docker]' })).stdout;

  const names = async (kind: ResourceKind, stack: string): Promise<string[]> => {
    const prefix = `${stack}_`;
    const list: Record<ResourceKind, string[]> = {
      service: ['service', 'ls', '--filter', `name=${prefix}`, '--format', '{{.Name}}'],
      volume: ['volume', 'ls', '--filter', `name=${prefix}`, '--format', '{{.Name}}'],
      secret: ['secret', 'ls', '--filter', `name=${prefix}`, '--format', '{{.Name}}'],
      network: ['network', 'ls', '--filter', `name=${prefix}`, '--format', '{{.Name}}'],
      container: ['ps', '-a', '--filter', `label=com.docker.stack.namespace=${stack}`, '--format', '{{.Names}}'],
    };
    const out = await docker(list[kind]);
    const all = out
      .split('\n')
      .map((n) => n.trim())
      .filter(Boolean);
    return kind === 'container' ? all : all.filter((n) => n.startsWith(prefix));
  };

  const services = async (stack: string): Promise<ServiceState[]> => {
    const replicas = parseReplicas(await docker(['service', 'ls', '--filter', `name=${stack}_`, '--format', '{{.Name}} {{.Replicas}}']));
    const own = [...replicas.keys()].filter((n) => n.startsWith(`${stack}_`));
    if (own.length === 0) return [];
    const updates = (await docker(['service', 'inspect', ...own, '--format', '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}'])).split(
      '\n',
    );
    return own.map((name, i) => ({ name, ...replicas.get(name)!, update: (updates[i] ?? '').trim() }));
  };

  const until = async (what: string, timeoutMs: number, check: () => Promise<string | null>): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    let last: string | null = 'not checked yet';
    while (Date.now() < deadline) {
      last = await check();
      if (last === null) return;
      await sleep(POLL_MS, undefined, { signal: context.signal });
    }
    throw new CcciError('ERR_CCCI_WAIT_TIMEOUT', `${what} within ${Math.round(timeoutMs / 1000)} s: ${last}`);
  };

  return {
    names,
    services,
    waitConverged: (stack, timeoutMs) =>
      until(`stack ${stack} did not converge`, timeoutMs, async () => {
        const state = await services(stack);
        if (state.length === 0) return 'no services yet';
        return isConverged(state)
          ? null
          : state.map((s) => `${s.name} ${s.running}/${s.desired}${s.update ? ` (${s.update})` : ''}`).join(', ');
      }),
    waitHealthy: (stack, timeoutMs) =>
      until(`stack ${stack} did not become healthy`, timeoutMs, async () => {
        const out = await docker(['ps', '--filter', `label=com.docker.stack.namespace=${stack}`, '--format', '{{.Names}} {{.Status}}']);
        const waiting = out.split('\n').filter((line) => /\((health: starting|unhealthy)\)/.test(line));
        if (out.trim() === '') return 'no running containers';
        return waiting.length ? waiting.join(', ') : null;
      }),
    container: async (stack, service) => {
      const filter = service ? `label=com.docker.swarm.service.name=${stack}_${service}` : `label=com.docker.stack.namespace=${stack}`;
      const out = await docker(['ps', '--filter', filter, '--filter', 'status=running', '--format', '{{.Names}}']);
      return (
        out
          .split('\n')
          .map((n) => n.trim())
          .filter(Boolean)
          .sort()[0] ?? null
      );
    },
    execIn: (container, command) => docker(['exec', container, ...command]),
    volumeMount: async (container) => {
      const out = await docker([
        'inspect',
        container,
        '--format',
        '{{range .Mounts}}{{if eq .Type "volume"}}{{.Destination}}\n{{end}}{{end}}',
      ]);
      return (
        out
          .split('\n')
          .map((n) => n.trim())
          .filter(Boolean)[0] ?? null
      );
    },
    removeStack: async (stack) => {
      if ((await names('service', stack)).length > 0) await docker(['stack', 'rm', stack]);
      await until(`stack ${stack} was not removed`, 120_000, async () => {
        const left = [...(await names('service', stack)), ...(await names('container', stack))];
        return left.length ? `still there: ${left.join(', ')}` : null;
      });
    },
    deployedVersion: async (stack) => {
      const own = await names('service', stack);
      if (own.length === 0) return null;
      const out = await docker(['service', 'inspect', ...own, '--format', `{{index .Spec.Labels "coop-cloud.${stack}.version"}}`]);
      return (
        out
          .split('\n')
          .map((v) => v.trim())
          .find((v) => v !== '' && v !== '<no value>') ?? null
      );
    },
    serviceImage: async (stack) => {
      const own = await names('service', stack);
      if (own.length === 0) return null;
      const out = await docker(['service', 'inspect', own.sort()[0]!, '--format', '{{.Spec.TaskTemplate.ContainerSpec.Image}}']);
      return out.trim() || null;
    },
    // The image's own tar and sh (busybox's, in the demo): no extra image to pull on an offline host.
    saveVolume: async (volume, image, dir, file) =>
      void (await docker(
        [
          'run',
          '--rm',
          '--entrypoint',
          'tar',
          '-v',
          `${volume}:/from:ro`,
          '-v',
          `${dir}:/to`,
          image,
          '-cf',
          `/to/${file}`,
          '-C',
          '/from',
          '.',
        ],
        600_000,
      )),
    loadVolume: async (volume, image, dir, file) =>
      void (await docker(
        [
          ...['run', '--rm', '--entrypoint', 'sh', '-v', `${volume}:/to`, '-v', `${dir}:/from:ro`, image, '-c'],
          'cd /to && rm -rf -- * .[!.]* ..?* && tar -xf "/from/$1" -C /to',
          ...['sh', file],
        ],
        600_000,
      )),
    removeLeftovers: async (stack) => {
      for (const kind of ['volume', 'secret'] as const) {
        const left = await names(kind, stack);
        if (left.length) {
          context.log(`  removing ${kind}s of ${stack}: ${left.join(', ')}`);
          await docker([kind, 'rm', ...left]);
        }
      }
      // Networks settle late: a `docker stack rm` cut short leaves one that swarm hides while its
      // removal is pending and shows again when that removal fails. Remove until the stack has had
      // none for three checks in a row.
      let quiet = 0;
      await until(`networks of ${stack} were not removed`, NETWORK_SETTLE_MS, async () => {
        const left = await names('network', stack);
        if (left.length === 0) return ++quiet >= 3 ? null : 'settling';
        quiet = 0;
        context.log(`  removing networks of ${stack}: ${left.join(', ')}`);
        await exec('docker', ['network', 'rm', ...left], { signal: context.signal, quiet: true }).catch(() => undefined);
        return `still there: ${left.join(', ')}`;
      });
    },
  };
}
