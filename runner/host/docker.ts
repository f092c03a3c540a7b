// Docker, as the runner uses it: what a stack owns (services, volumes, secrets, networks,
// containers), waits for its services to converge and for it to be gone, and the primitives
// teardown falls back on. State is read through the Engine's socket where there is one
// (runner/host/engine.ts), else the CLI; actions always go through the docker CLI.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

import { CcciError, InputError } from '../../lib/errors.js';
import { type EngineEvent, engineGet, engineSocket, eventFeed, filters } from './engine.js';
import { exec } from './exec.js';
import type { Log } from './log.js';
import { timings, wallNowMs } from './timings.js';

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

/** Between checks when no event stream is up (a TCP or SSH DOCKER_HOST, a stream that died). */
const POLL_MS = 1_000;
/** Between checks while the stream is up: only a safety net for an event the stream lost. */
const SLOW_POLL_MS = 5_000;
/**
 * Re-checks after an event that did not end the wait: swarm's task counts trail the container
 * events that change them by tens of milliseconds, so every 5 ms for 100 ms, every 10 ms to
 * 200 ms, then backing off (docs/concurrency.md#9-waits).
 */
const LAG_RECHECKS_MS = [...Array<number>(20).fill(5), ...Array<number>(10).fill(10), 50, 100, 200, 400];
const NETWORK_SETTLE_MS = 60_000;

/** A container of a stack, as `docker ps` shows it. */
interface ContainerState {
  name: string;
  status: string;
}

/** The state reads a wait repeats: through the Engine's socket when it has one, else the CLI. */
interface StateReads {
  services(stack: string): Promise<ServiceState[]>;
  /** Names of the stack's resources of one kind. */
  names(kind: ResourceKind, stack: string): Promise<string[]>;
  containers(stack: string, all: boolean): Promise<ContainerState[]>;
  /** The stack's swarm tasks, in any state: a task holds its networks until swarm deletes it. */
  tasks(stack: string): Promise<{ name: string }[]>;
}

interface EngineService {
  Spec: { Name: string };
  ServiceStatus?: { RunningTasks: number; DesiredTasks: number };
  UpdateStatus?: { State?: string };
}

function engineReads(socket: string, signal?: AbortSignal): StateReads {
  const get = <T>(path: string): Promise<T> => engineGet<T>(socket, path, signal);
  const own = (stack: string, names: string[]): string[] => names.filter((name) => name.startsWith(`${stack}_`)).sort();
  const reads: StateReads = {
    names: async (kind, stack) => {
      const byName = filters({ name: [`${stack}_`] });
      const listed: Record<ResourceKind, () => Promise<string[]>> = {
        service: async () =>
          own(
            stack,
            (await get<EngineService[]>(`/services?${byName}`)).map((s) => s.Spec.Name),
          ),
        volume: async () =>
          own(
            stack,
            ((await get<{ Volumes: { Name: string }[] | null }>(`/volumes?${byName}`)).Volumes ?? []).map((v) => v.Name),
          ),
        secret: async () =>
          own(
            stack,
            (await get<{ Spec: { Name: string } }[]>(`/secrets?${byName}`)).map((s) => s.Spec.Name),
          ),
        network: async () =>
          own(
            stack,
            (await get<{ Name: string }[]>(`/networks?${byName}`)).map((n) => n.Name),
          ),
        container: async () => (await reads.containers(stack, true)).map((c) => c.name),
      };
      return listed[kind]();
    },
    services: async (stack) => {
      const list = await get<EngineService[]>(`/services?status=true&${filters({ name: [`${stack}_`] })}`);
      const wanted = new Set(
        own(
          stack,
          list.map((s) => s.Spec.Name),
        ),
      );
      return list
        .filter((s) => wanted.has(s.Spec.Name))
        .map((s) => ({
          name: s.Spec.Name,
          running: s.ServiceStatus?.RunningTasks ?? 0,
          desired: s.ServiceStatus?.DesiredTasks ?? 0,
          update: s.UpdateStatus?.State ?? '',
        }))
        .sort((x, y) => x.name.localeCompare(y.name));
    },
    containers: async (stack, all) => {
      const query = `${all ? 'all=1&' : ''}${filters({ label: [`com.docker.stack.namespace=${stack}`] })}`;
      const list = await get<{ Names: string[]; Status: string }[]>(`/containers/json?${query}`);
      return list.map((c) => ({ name: (c.Names[0] ?? '').replace(/^\//, ''), status: c.Status }));
    },
    tasks: async (stack) => {
      const list = await get<{ ID: string }[]>(`/tasks?${filters({ label: [`com.docker.stack.namespace=${stack}`] })}`);
      return list.map((task) => ({ name: `task ${task.ID}` }));
    },
  };
  return reads;
}

/** Connection errors of a socket that is absent or not ours to open. */
const UNREACHABLE = new Set(['ENOENT', 'ECONNREFUSED', 'EACCES', 'EPERM']);

/** `engine`'s reads until the socket proves unreachable, then `cli`'s for good (said once through `tell`). */
function fallingBack(engine: StateReads, cli: StateReads, tell: (why: string) => void): StateReads {
  let current = engine;
  const guard = async <T>(call: (from: StateReads) => Promise<T>): Promise<T> => {
    try {
      return await call(current);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (current === cli || code === undefined || !UNREACHABLE.has(code)) throw error;
      current = cli;
      tell(code);
      return await call(cli);
    }
  };
  return {
    names: (kind, stack) => guard((from) => from.names(kind, stack)),
    services: (stack) => guard((from) => from.services(stack)),
    containers: (stack, all) => guard((from) => from.containers(stack, all)),
    tasks: (stack) => guard((from) => from.tasks(stack)),
  };
}

/** Whether `event` concerns `stack`: its services, their containers, its networks. */
function aboutStack(stack: string, event: EngineEvent): boolean {
  const attributes = event.Actor.Attributes ?? {};
  // A healthcheck's own exec_* events change nothing a wait reads: its outcome comes as health_status.
  if (event.Type === 'container') return attributes['com.docker.stack.namespace'] === stack && !event.Action.startsWith('exec_');
  return (attributes.name ?? '').startsWith(`${stack}_`);
}

export function dockerClient(context: DockerContext): Docker {
  const docker = async (args: string[], timeoutMs = 120_000): Promise<string> =>
    (await exec('docker', args, { signal: context.signal, log: context.log, quiet: true, timeoutMs, tag: '[docker]' })).stdout;
  const socket = engineSocket();
  const feed = socket === null ? null : eventFeed(socket);

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

  const cliReads: StateReads = {
    services: async (stack) => {
      const replicas = parseReplicas(await docker(['service', 'ls', '--filter', `name=${stack}_`, '--format', '{{.Name}} {{.Replicas}}']));
      const own = [...replicas.keys()].filter((n) => n.startsWith(`${stack}_`));
      if (own.length === 0) return [];
      const updates = (
        await docker(['service', 'inspect', ...own, '--format', '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}'])
      ).split('\n');
      return own.map((name, i) => ({ name, ...replicas.get(name)!, update: (updates[i] ?? '').trim() }));
    },
    containers: async (stack, all) => {
      const out = await docker([
        ...['ps', ...(all ? ['-a'] : []), '--filter', `label=com.docker.stack.namespace=${stack}`],
        ...['--format', '{{.Names}}\t{{.Status}}'],
      ]);
      return out
        .split('\n')
        .filter((line) => line.trim())
        .map((line) => {
          const [name, status] = line.split('\t');
          return { name: name!.trim(), status: status ?? '' };
        });
    },
    names,
    tasks: async (stack) => {
      try {
        return (await docker(['stack', 'ps', stack, '--format', '{{.ID}}']))
          .split('\n')
          .filter((id) => id.trim())
          .map((id) => ({ name: `task ${id.trim()}` }));
      } catch (error) {
        // `docker stack ps` fails on a stack with no task left: that is the answer wanted.
        if (/nothing found in stack/.test((error as Error).message)) return [];
        throw error;
      }
    },
  };
  const reads =
    socket === null
      ? cliReads
      : fallingBack(engineReads(socket, context.signal), cliReads, (why) =>
          context.log(`  docker engine socket ${socket} cannot be reached (${why}): waits read through the docker CLI`),
        );

  /**
   * Checks until `check` says done (null), re-checking when docker reports an event about `stack`
   * (and a few times shortly after, for swarm's lag), and by a slow poll in case the stream lost
   * one. The wait is recorded as a span and, up to the event that ended it, as time outside cc-ci.
   */
  const until = async (
    what: string,
    wait: { span: string; stack: string; timeoutMs: number },
    check: () => Promise<string | null>,
  ): Promise<void> =>
    timings.span(wait.span, async () => {
      const started = performance.now();
      const deadline = Date.now() + wait.timeoutMs;
      const events = feed?.subscribe((event) => aboutStack(wait.stack, event));
      let last: string | null = 'not checked yet';
      let lastEvent: EngineEvent | null = null;
      let lag = LAG_RECHECKS_MS.length;
      try {
        while (Date.now() < deadline) {
          last = await check();
          if (last === null) {
            const endedAt = performance.now();
            if (lastEvent === null) timings.outsideBetween(started, endedAt);
            else {
              // Outside cc-ci until docker's event; from there on, the reaction is cc-ci's.
              const eventAt = lastEvent.timeNano / 1e6 - performance.timeOrigin;
              timings.outsideBetween(started, Math.min(endedAt, eventAt));
              timings.reacted(wallNowMs() - lastEvent.timeNano / 1e6);
            }
            return;
          }
          const delay = !events || !feed!.alive ? POLL_MS : lag < LAG_RECHECKS_MS.length ? LAG_RECHECKS_MS[lag++]! : SLOW_POLL_MS;
          const remaining = Math.max(0, deadline - Date.now());
          if (events) {
            const event = await events.next(Math.min(delay, remaining), context.signal);
            if (event !== null) [lastEvent, lag] = [event, 0];
          } else await sleep(Math.min(delay, remaining), undefined, { signal: context.signal });
        }
      } finally {
        events?.close();
      }
      timings.outsideBetween(started, performance.now());
      throw new CcciError('ERR_CCCI_WAIT_TIMEOUT', `${what} within ${Math.round(wait.timeoutMs / 1000)} s: ${last}`);
    });

  return {
    names: (kind, stack) => reads.names(kind, stack),
    services: (stack) => reads.services(stack),
    waitConverged: (stack, timeoutMs) =>
      until(`stack ${stack} did not converge`, { span: `wait converged ${stack}`, stack, timeoutMs }, async () => {
        const state = await reads.services(stack);
        if (state.length === 0) return 'no services yet';
        return isConverged(state)
          ? null
          : state.map((s) => `${s.name} ${s.running}/${s.desired}${s.update ? ` (${s.update})` : ''}`).join(', ');
      }),
    waitHealthy: (stack, timeoutMs) =>
      until(`stack ${stack} did not become healthy`, { span: `wait healthy ${stack}`, stack, timeoutMs }, async () => {
        const running = await reads.containers(stack, false);
        if (running.length === 0) return 'no running containers';
        const waiting = running.filter((c) => /\((health: starting|unhealthy)\)/.test(c.status));
        return waiting.length ? waiting.map((c) => `${c.name} ${c.status}`).join(', ') : null;
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
      if ((await reads.names('service', stack)).length > 0) await docker(['stack', 'rm', stack]);
      await until(`stack ${stack} was not removed`, { span: `wait removed ${stack}`, stack, timeoutMs: 120_000 }, async () => {
        const left = [...(await reads.services(stack)), ...(await reads.containers(stack, true))].map((item) => item.name);
        return left.length ? `still there: ${left.join(', ')}` : null;
      });
    },
    deployedVersion: async (stack) => {
      const own = await reads.names('service', stack);
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
      const own = await reads.names('service', stack);
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
        const left = await reads.names(kind, stack);
        if (left.length) {
          context.log(`  removing ${kind}s of ${stack}: ${left.join(', ')}`);
          await docker([kind, 'rm', ...left]);
        }
      }
      // A network of the stack is removed as soon as it is listed. It is settled once none is
      // listed, nothing of the stack could still hold one (a task, a container), and this node has
      // destroyed its own instance of each: swarm refuses a network's pending removal while any of
      // those holds it, and the network then shows again (docs/concurrency.md#9-waits). With
      // nothing pending, that is one check.
      await until(
        `networks of ${stack} were not removed`,
        { span: `wait networks ${stack}`, stack, timeoutMs: NETWORK_SETTLE_MS },
        async () => {
          const left = await reads.names('network', stack);
          if (left.length > 0) {
            context.log(`  removing networks of ${stack}: ${left.join(', ')}`);
            await exec('docker', ['network', 'rm', ...left], { signal: context.signal, quiet: true }).catch(() => undefined);
            return `still there: ${left.join(', ')}`;
          }
          const holders = [...(await reads.tasks(stack)), ...(await reads.containers(stack, true))].map((item) => item.name);
          if (holders.length) return `still held by ${holders.join(', ')}`;
          const onNode = feed?.heldNetworks(`${stack}_`) ?? [];
          return onNode.length ? `not yet destroyed on this node: ${onNode.join(', ')}` : null;
        },
      );
    },
  };
}
