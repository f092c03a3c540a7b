// The Docker Engine API on its unix socket, for what a wait needs: the event stream and the few
// state reads a wait repeats after each event. A read here takes a few milliseconds where a
// `docker` CLI call takes tens, and the events come as they happen (docs/concurrency.md#9-waits).
// node:http speaks to the socket directly: dockerode would bring ssh2 and its native build for two
// GET calls. Actions (deploy, rm, exec) stay with the docker and abra CLIs.
import { request } from 'node:http';

import { CcciError } from '../../lib/errors.js';
import { exec } from './exec.js';
import { wallNowMs } from './timings.js';

/** The socket the Engine listens on: DOCKER_HOST's unix path, else the default; null for a TCP or SSH host. */
export function engineSocket(env: NodeJS.ProcessEnv = process.env): string | null {
  const host = env.DOCKER_HOST;
  if (!host) return '/var/run/docker.sock';
  return host.startsWith('unix://') ? host.slice('unix://'.length) : null;
}

/** One Engine event, as `GET /events` streams it. */
export interface EngineEvent {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  /** `local` for what this node's Engine did, `swarm` for the manager's cluster events. */
  scope?: string;
  /** Nanoseconds since the epoch, on the host's clock. */
  timeNano: number;
}

const REQUEST_TIMEOUT_MS = 30_000;
const ENGINE = 'ERR_CCCI_DOCKER_ENGINE';

/** `GET <path>` on the Engine, its JSON body; rejects on a status ≥ 400 or a connection error. */
export function engineGet<T>(socket: string, path: string, signal?: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method: 'GET', timeout: REQUEST_TIMEOUT_MS, signal }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => {
        if ((response.statusCode ?? 500) >= 400)
          reject(new CcciError(ENGINE, `docker engine GET ${path}: ${response.statusCode} ${body.trim()}`));
        else {
          try {
            resolve(JSON.parse(body) as T);
          } catch (error) {
            reject(new CcciError(ENGINE, `docker engine GET ${path}: unparseable answer (${(error as Error).message})`));
          }
        }
      });
    });
    req.on('timeout', () =>
      req.destroy(new CcciError(ENGINE, `docker engine GET ${path}: no answer within ${REQUEST_TIMEOUT_MS / 1000} s`)),
    );
    req.on('error', reject);
    req.end();
  });
}

/** The `filters` query parameter of the Engine API. */
export function filters(spec: Record<string, string[]>): string {
  return `filters=${encodeURIComponent(JSON.stringify(spec))}`;
}

type Listener = (event: EngineEvent) => void;

/** Matching events, buffered from the moment of subscribing, so none is lost between two checks. */
export interface Subscription {
  /** The next matching event, or null when `ms` pass first; an abort rejects with its reason. */
  next(ms: number, signal?: AbortSignal): Promise<EngineEvent | null>;
  close(): void;
}

const REOPEN_MS = 1_000;

/**
 * One `GET /events` stream per process, opened when the feed is made and reopened a second after
 * it ends (a restarted daemon, a dropped socket); each (re)open asks for the events since the last
 * one seen, so a gap loses nothing docker still remembers. `alive` says whether it streams now: a
 * waiter polls faster while it does not. The socket and the timer are unref'd: they never keep a
 * process alive. The feed also remembers what this node last did with each network, for the
 * network-settle rule (docs/concurrency.md#9-waits).
 */
export class EventFeed {
  private readonly listeners = new Set<Listener>();
  private readonly localNetworks = new Map<string, string>();
  private open = false;
  private since = wallNowMs() / 1000;
  alive = false;

  constructor(private readonly socket: string) {
    this.start();
  }

  /**
   * Networks named `<prefix>…` that this node has instantiated (a local `create` or `connect`) and
   * not yet destroyed, as far as the feed has seen since it was made. Swarm refuses to delete a
   * network a node still holds, and then shows the network again.
   */
  heldNetworks(prefix: string): string[] {
    return [...this.localNetworks].filter(([name, action]) => name.startsWith(prefix) && action !== 'destroy').map(([name]) => name);
  }

  subscribe(match: (event: EngineEvent) => boolean): Subscription {
    const queue: EngineEvent[] = [];
    let wake: (() => void) | null = null;
    const listener: Listener = (event) => {
      if (!match(event)) return;
      queue.push(event);
      wake?.();
    };
    this.listeners.add(listener);
    return {
      next: (ms, signal) => {
        if (queue.length > 0) return Promise.resolve(queue.shift()!);
        return new Promise((resolve, reject) => {
          const done = (): void => {
            clearTimeout(timer);
            signal?.removeEventListener('abort', onAbort);
            wake = null;
          };
          const onAbort = (): void => {
            done();
            reject(signal!.reason);
          };
          const timer = setTimeout(() => {
            done();
            resolve(null);
          }, ms);
          wake = () => {
            done();
            resolve(queue.shift()!);
          };
          if (signal?.aborted) onAbort();
          else signal?.addEventListener('abort', onAbort, { once: true });
        });
      },
      close: () => this.listeners.delete(listener),
    };
  }

  private start(): void {
    if (this.open) return;
    this.open = true;
    const path = `/events?since=${this.since.toFixed(6)}&${filters({ type: ['service', 'container', 'network'] })}`;
    const req = request({ socketPath: this.socket, path, method: 'GET' }, (response) => {
      if (response.statusCode !== 200) {
        response.resume();
        return;
      }
      this.alive = true;
      let buffered = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        buffered += chunk;
        let newline = buffered.indexOf('\n');
        while (newline >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          newline = buffered.indexOf('\n');
          if (line) this.dispatch(line);
        }
      });
    });
    req.on('socket', (socket) => socket.unref());
    req.on('error', () => undefined);
    req.on('close', () => {
      this.open = false;
      this.alive = false;
      setTimeout(() => this.start(), REOPEN_MS).unref();
    });
    req.end();
  }

  private dispatch(line: string): void {
    let event: EngineEvent;
    try {
      event = JSON.parse(line) as EngineEvent;
    } catch {
      return; // a line the Engine never sends whole; the slow poll covers what it meant
    }
    this.since = Math.max(this.since, event.timeNano / 1e9);
    const name = event.Actor?.Attributes?.name;
    if (event.Type === 'network' && event.scope === 'local' && name) this.localNetworks.set(name, event.Action);
    for (const listener of this.listeners) listener(event);
  }
}

const feeds = new Map<string, EventFeed>();

/** The process's event feed on `socket`. */
export function eventFeed(socket: string): EventFeed {
  const feed = feeds.get(socket) ?? new EventFeed(socket);
  feeds.set(socket, feed);
  return feed;
}

/** What cc-ci reads of `docker info`. */
export interface DockerInfo {
  ServerVersion?: string;
  DockerRootDir?: string;
  Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean; NodeID?: string; Nodes?: number; Cluster?: { ID?: string } };
}

/** How long `docker info` may take. */
const INFO_TIMEOUT_MS = 10_000;

/** `GET /info` on the Engine's socket; through `docker info` when DOCKER_HOST is TCP or SSH. */
export async function dockerInfo(): Promise<DockerInfo> {
  const socket = engineSocket();
  if (socket !== null) return engineGet<DockerInfo>(socket, '/info', AbortSignal.timeout(INFO_TIMEOUT_MS));
  const { stdout } = await exec('docker', ['info', '--format', '{{json .}}'], { timeoutMs: INFO_TIMEOUT_MS });
  return JSON.parse(stdout) as DockerInfo;
}

/** The swarm's cluster id: the etcd lock's key space (docs/scale-out.md#keys). */
export async function swarmClusterId(): Promise<string> {
  const id = (await dockerInfo()).Swarm?.Cluster?.ID;
  if (!id)
    throw new CcciError(
      'ERR_CCCI_DOCKER_ENGINE',
      'docker info names no swarm cluster: the etcd lock needs this node to be a swarm manager',
    );
  return id;
}
