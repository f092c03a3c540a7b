// A small etcd v3 client over etcd's JSON gateway (grpc-gateway, `POST /v3/...`): the lease, kv and
// watch calls a lock on etcd leases needs (docs/scale-out.md), and nothing else.
//
// Why not the `etcd3` npm package: unmaintained since 2023; its Lease reports a lost lease only on a
// TTL-0 reply or when a reconnect finds more than 2 × TTL since the last reply, i.e. after the
// server has already expired it; and no call takes an AbortSignal. Here every call is one HTTP
// request the caller can abort, with a deadline of its own, and keepAliveOnce() is one renewal the
// caller times itself.
//
// node:http and node:https directly: they take `signal`, and https takes ca/cert/key for etcd's
// client-certificate TLS (the built-in fetch cannot present a client certificate without undici's
// dispatcher, which is not a dependency).
//
// The gateway's JSON: keys and values are base64; int64 fields (lease ids, revisions, TTLs) come as
// decimal strings and ids and revisions stay strings here (they exceed 2^53); fields at their
// default value (0, false, '') are left out of answers; answers use the proto field names
// (`create_revision`).
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

import { CcciError, InputError, show } from './errors.js';

export interface EtcdOptions {
  /** Client URLs, `http://host:port` or `https://host:port`; tried in turn, starting from the last that answered. */
  endpoints: string[];
  /** PEM text (not a path) of the CA that signed the members' certificates, for https endpoints. */
  ca?: string;
  /** PEM text of this client's certificate, when the members require one. */
  cert?: string;
  /** PEM text of that certificate's key. */
  key?: string;
  /** Deadline of one call on one endpoint, in ms (default 3000). */
  timeoutMs?: number;
}

export interface EtcdKv {
  key: string;
  value: string;
  createRevision: string;
  modRevision: string;
  /** The lease the key is attached to, '0' when none. */
  lease: string;
}

/** An etcd call that failed: every endpoint unreachable, a gRPC error from the server, or a watch that ended. */
export class EtcdError extends CcciError {
  readonly endpoint: string | undefined;
  /** The gRPC status code the server answered with (5 not found, 14 unavailable, ...), when it did. */
  readonly grpcCode: number | undefined;
  constructor(message: string, options: ErrorOptions & { endpoint?: string; grpcCode?: number } = {}) {
    super('ERR_CCCI_ETCD', message, options);
    this.name = 'EtcdError';
    this.endpoint = options.endpoint;
    this.grpcCode = options.grpcCode;
  }
}

const DEFAULT_TIMEOUT_MS = 3000;
const GRPC_NOT_FOUND = 5;
/** What a member says when it cannot serve the call now (no leader, partitioned away, stopping): another may. */
const GRPC_UNAVAILABLE = 14;

/** One endpoint failed this attempt (connection, deadline, unavailable): the next one is tried. */
class EndpointFailure extends Error {
  readonly code = 'ERR_CCCI_ETCD_ENDPOINT';
  constructor(
    readonly why: string,
    readonly grpcCode?: number,
  ) {
    super(why);
  }
}

/** The gateway's JSON for one message: an answer, or a gRPC error. */
type Json = Record<string, unknown>;

interface RawKv {
  key?: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  lease?: string;
}

interface Endpoint {
  url: URL;
  /** As the caller gave it, for messages. */
  name: string;
}

/** A stream's handler: a value ends the call with it; undefined reads on. */
type OnMessage<T> = (message: Json) => T | undefined;

export class EtcdClient {
  private readonly endpoints: Endpoint[];
  private readonly timeoutMs: number;
  private readonly tls: { ca?: string; cert?: string; key?: string };
  // One agent per client and scheme: kept-alive sockets are reused between calls, and Node unrefs
  // idle ones, so an idle client never keeps the process alive.
  private readonly httpAgent = new HttpAgent({ keepAlive: true });
  private readonly httpsAgent: HttpsAgent;
  /** The index of the endpoint that answered last: calls start there. */
  private current = 0;

  constructor(options: EtcdOptions) {
    if (!Array.isArray(options.endpoints) || options.endpoints.length === 0)
      throw new InputError(`etcd endpoints: expected at least one URL, got ${show(options.endpoints)}`);
    this.endpoints = options.endpoints.map(toEndpoint);
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
      throw new InputError(`etcd timeoutMs: expected a positive number, got ${show(timeoutMs)}`);
    this.timeoutMs = timeoutMs;
    this.tls = { ca: options.ca, cert: options.cert, key: options.key };
    this.httpsAgent = new HttpsAgent({ keepAlive: true, ...this.tls });
  }

  /** POST /v3/lease/grant */
  async grant(ttlSeconds: number, signal?: AbortSignal): Promise<{ id: string; ttl: number }> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0)
      throw new InputError(`etcd lease TTL: expected whole seconds > 0, got ${show(ttlSeconds)}`);
    const answer = await this.unary('lease grant', '/v3/lease/grant', { TTL: String(ttlSeconds) }, signal);
    if (typeof answer.error === 'string' && answer.error) throw new EtcdError(`etcd lease grant: ${answer.error}`);
    return { id: String(answer.ID), ttl: Number(answer.TTL ?? 0) };
  }

  /**
   * One renewal: POST /v3/lease/keepalive with {ID}, read the FIRST streamed result, then close the
   * request (the gateway keeps a keepalive stream open for more). Resolves with the TTL the server
   * reports; 0 (the gateway leaves a 0 TTL out) means the lease is gone.
   */
  keepAliveOnce(id: string, signal?: AbortSignal): Promise<number> {
    return this.failover(`lease keepalive ${id}`, signal, (endpoint, attempt) =>
      this.stream(endpoint, '/v3/lease/keepalive', { ID: id }, attempt, (message) => {
        const result = streamResult(message);
        return Number(result.TTL ?? 0);
      }),
    );
  }

  /** POST /v3/lease/revoke; a lease already gone (not found) resolves too. */
  async revoke(id: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.unary(`lease revoke ${id}`, '/v3/lease/revoke', { ID: id }, signal);
    } catch (error) {
      // Gone already: expired, revoked by a retry of this call that did reach the server, or never granted.
      if (error instanceof EtcdError && error.grpcCode === GRPC_NOT_FOUND) return;
      throw error;
    }
  }

  /** POST /v3/lease/timetolive: the seconds the lease has left, -1 when it is gone. */
  async timeToLive(id: string, signal?: AbortSignal): Promise<number> {
    const answer = await this.unary(`lease timetolive ${id}`, '/v3/lease/timetolive', { ID: id }, signal);
    return Number(answer.TTL ?? 0);
  }

  /**
   * POST /v3/kv/txn: if `key` does not exist (its create revision is 0), put it with `value` on
   * `lease`; else read it. `revision` is the store's revision after the txn (for a create, the
   * key's create revision: the fencing token). A holder on this very lease is taken as created: a
   * call that timed out on one endpoint after its put applied is retried on the next, and finds its
   * own key.
   */
  async createIfAbsent(
    key: string,
    value: string,
    lease: string,
    signal?: AbortSignal,
  ): Promise<{ created: true; revision: string } | { created: false; revision: string; holder: EtcdKv | null }> {
    const k = b64(key);
    const answer = await this.unary(
      `create ${key}`,
      '/v3/kv/txn',
      {
        compare: [{ target: 'CREATE', result: 'EQUAL', key: k, create_revision: '0' }],
        success: [{ request_put: { key: k, value: b64(value), lease } }],
        failure: [{ request_range: { key: k } }],
      },
      signal,
    );
    const revision = String(headerOf(answer).revision ?? '0');
    if (answer.succeeded === true) return { created: true, revision };
    const responses = (answer.responses ?? []) as { response_range?: { kvs?: RawKv[] } }[];
    const raw = responses[0]?.response_range?.kvs?.[0];
    const holder = raw ? toKv(raw) : null;
    if (holder && lease !== '0' && holder.lease === lease && holder.value === value)
      return { created: true, revision: holder.createRevision };
    return { created: false, revision, holder };
  }

  /** The key's current value, or null when it does not exist (a linearizable read). */
  async get(key: string, signal?: AbortSignal): Promise<EtcdKv | null> {
    const answer = await this.unary(`get ${key}`, '/v3/kv/range', { key: b64(key) }, signal);
    const kvs = (answer.kvs ?? []) as RawKv[];
    return kvs[0] ? toKv(kvs[0]) : null;
  }

  /** Every key with this prefix, in key order (range_end = the prefix with its last byte + 1). */
  async list(prefix: string, signal?: AbortSignal): Promise<EtcdKv[]> {
    const start = Buffer.from(prefix, 'utf8');
    const answer = await this.unary(
      `list ${prefix}`,
      '/v3/kv/range',
      { key: start.length > 0 ? start.toString('base64') : 'AA==', range_end: prefixEnd(start).toString('base64') },
      signal,
    );
    return ((answer.kvs ?? []) as RawKv[]).map(toKv);
  }

  /**
   * POST /v3/watch from `fromRevision` on `key`, deletes only: resolves when a DELETE of `key`
   * arrives (including one already past at `fromRevision`). The per-call deadline covers only the
   * watch's creation; after that it waits until the delete, the caller's abort (rejects with its
   * reason), or the stream ending or the server cancelling the watch (a compacted `fromRevision`):
   * EtcdError, and the caller reads the key again before it watches again. A member cut off
   * silently after the watch was created is not noticed here: the caller bounds its wait.
   */
  watchDelete(key: string, fromRevision: string, signal: AbortSignal): Promise<void> {
    const k = b64(key);
    const body = { create_request: { key: k, start_revision: fromRevision, filters: ['NOPUT'] } };
    return this.failover(`watch ${key}`, signal, (endpoint, attempt, established) =>
      this.stream(endpoint, '/v3/watch', body, attempt, (message) => {
        const result = streamResult(message);
        if (result.created === true) established();
        if (result.canceled === true) {
          const why = result.compact_revision
            ? `revision ${fromRevision} is compacted (now ${String(result.compact_revision)})`
            : String(result.cancel_reason ?? 'cancelled');
          throw new EtcdError(`etcd watch ${key} on ${endpoint.name}: ${why}`, { endpoint: endpoint.name });
        }
        const events = (result.events ?? []) as { type?: string; kv?: RawKv }[];
        return events.some((event) => event.type === 'DELETE' && event.kv?.key === k) ? true : undefined;
      }).then(() => undefined),
    );
  }

  /** POST /v3/maintenance/status on this one endpoint (no failover). */
  async status(endpoint: string, signal?: AbortSignal): Promise<{ leader: string; memberId: string; raftTerm: string; version: string }> {
    const target = this.endpoints.find((e) => e.name === endpoint) ?? toEndpoint(endpoint);
    const answer = await this.failover(
      `status ${endpoint}`,
      signal,
      (e, attempt) => this.post(e, '/v3/maintenance/status', {}, attempt, onlyMessage),
      [target],
    );
    return {
      leader: String(answer.leader ?? '0'),
      memberId: String(headerOf(answer).member_id ?? '0'),
      raftTerm: String(answer.raftTerm ?? headerOf(answer).raft_term ?? '0'),
      version: String(answer.version ?? ''),
    };
  }

  /** POST /v3/cluster/member/list */
  async members(signal?: AbortSignal): Promise<{ id: string; name: string; clientURLs: string[] }[]> {
    const answer = await this.unary('member list', '/v3/cluster/member/list', {}, signal);
    const members = (answer.members ?? []) as { ID?: string; name?: string; clientURLs?: string[] }[];
    return members.map((m) => ({ id: String(m.ID ?? '0'), name: m.name ?? '', clientURLs: m.clientURLs ?? [] }));
  }

  /** Closes the idle kept-alive sockets (calls still in flight go on; a later call opens new ones). */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /** A unary call with failover: the answer's JSON. */
  private unary(what: string, path: string, body: Json, signal: AbortSignal | undefined): Promise<Json> {
    return this.failover(what, signal, (endpoint, attempt) => this.post(endpoint, path, body, attempt, onlyMessage));
  }

  /**
   * Runs `call` on one endpoint after another, starting from the last that answered, each attempt
   * under its own deadline, until one succeeds or each has failed once. A caller's abort ends it at
   * once with the signal's reason and is never retried; an EtcdError (the server answered, and not
   * with "unavailable") is not retried either.
   */
  private async failover<T>(
    what: string,
    signal: AbortSignal | undefined,
    call: (endpoint: Endpoint, attempt: AbortSignal, established: () => void) => Promise<T>,
    endpoints: Endpoint[] = this.endpoints,
  ): Promise<T> {
    signal?.throwIfAborted();
    const failures: string[] = [];
    const grpcCodes = new Set<number | undefined>();
    const start = endpoints === this.endpoints ? this.current : 0;
    for (let i = 0; i < endpoints.length; i++) {
      const index = (start + i) % endpoints.length;
      const endpoint = endpoints[index]!;
      // The caller's signal and this attempt's deadline, linked by hand rather than with
      // AbortSignal.any: the listener and the timer are gone when the attempt ends, so a
      // long-lived caller signal (a run's lifetime) gathers nothing across many renewals.
      const controller = new AbortController();
      const onAbort = (): void => controller.abort(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      const timer = setTimeout(() => controller.abort(new EndpointFailure(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      try {
        const value = await call(endpoint, controller.signal, () => clearTimeout(timer));
        if (endpoints === this.endpoints) this.current = index;
        return value;
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        const failure = controller.signal.aborted ? controller.signal.reason : error;
        if (!(failure instanceof EndpointFailure)) throw failure;
        failures.push(`${endpoint.name}: ${failure.why}`);
        grpcCodes.add(failure.grpcCode);
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      }
    }
    // Every member said "unavailable" (no leader: quorum lost): the error says so with the code.
    const [only] = grpcCodes;
    const grpcCode = grpcCodes.size === 1 ? only : undefined;
    throw new EtcdError(`etcd ${what}: every endpoint failed (${failures.join('; ')})`, { grpcCode });
  }

  /** The unary form: POST, read the whole answer, hand it to `onMessage` once. */
  private post<T>(endpoint: Endpoint, path: string, body: Json, signal: AbortSignal, onMessage: OnMessage<T>): Promise<T> {
    return this.exchange(endpoint, path, body, signal, false, onMessage);
  }

  /** The streaming form: POST, hand each newline-delimited JSON message to `onMessage` until it returns a value. */
  private stream<T>(endpoint: Endpoint, path: string, body: Json, signal: AbortSignal, onMessage: OnMessage<T>): Promise<T> {
    return this.exchange(endpoint, path, body, signal, true, onMessage);
  }

  private exchange<T>(
    endpoint: Endpoint,
    path: string,
    body: Json,
    signal: AbortSignal,
    streaming: boolean,
    onMessage: OnMessage<T>,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const payload = JSON.stringify(body);
      const https = endpoint.url.protocol === 'https:';
      const options = {
        method: 'POST',
        protocol: endpoint.url.protocol,
        hostname: endpoint.url.hostname,
        port: endpoint.url.port || (https ? 443 : 80),
        path,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        signal,
      };
      let settled = false;
      let messages = 0;
      let req: ClientRequest;
      // The connection ended early: before any message another endpoint may do (a member going
      // away); after one (a watch that was created) it is the caller's to decide.
      const ended = (how: string): Error =>
        messages === 0 ? new EndpointFailure(how) : new EtcdError(`etcd ${path} on ${endpoint.name}: ${how}`, { endpoint: endpoint.name });
      const finish = (outcome: () => void): void => {
        if (settled) return;
        settled = true;
        outcome();
        // A stream stays open on the server's side after the message we wanted: close it (its
        // socket is not reused). A unary answer has ended and its socket goes back to the agent.
        if (streaming) req.destroy();
      };
      // Turns a message into the call's outcome: a gRPC error, or the handler's value.
      const handle = (message: Json): void => {
        messages++;
        try {
          const failed = grpcError(message, endpoint);
          if (failed) {
            finish(() => reject(failed));
            return;
          }
          const value = onMessage(message);
          if (value !== undefined) finish(() => resolve(value));
        } catch (error) {
          finish(() => reject(error));
        }
      };
      const onResponse = (response: IncomingMessage): void => {
        let buffered = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          buffered += chunk;
          if (!streaming) return;
          for (let newline = buffered.indexOf('\n'); newline >= 0 && !settled; newline = buffered.indexOf('\n')) {
            const line = buffered.slice(0, newline).trim();
            buffered = buffered.slice(newline + 1);
            if (line) parseThen(line, response.statusCode, handle, (failure) => finish(() => reject(failure)));
          }
        });
        response.on('end', () => {
          if (!streaming) parseThen(buffered, response.statusCode, handle, (failure) => finish(() => reject(failure)));
          if (!settled) finish(() => reject(ended('the stream ended')));
        });
        response.on('error', (error) => finish(() => reject(messages === 0 ? connectionFailure(error) : ended(error.message))));
      };
      req = https
        ? httpsRequest({ ...options, ...this.tls, agent: this.httpsAgent }, onResponse)
        : httpRequest({ ...options, agent: this.httpAgent }, onResponse);
      // After an abort, failover() reads the reason from the signal; this rejection only settles the promise.
      req.on('error', (error) => finish(() => reject(messages === 0 ? connectionFailure(error) : ended(error.message))));
      req.on('close', () => finish(() => reject(ended('the connection closed'))));
      req.end(payload);
    });
  }
}

function toEndpoint(name: string): Endpoint {
  let url: URL;
  try {
    url = new URL(name);
  } catch {
    throw new InputError(`etcd endpoint ${show(name)}: not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new InputError(`etcd endpoint ${show(name)}: expected http:// or https://`);
  return { url, name };
}

/** A unary handler: the one message is the answer. */
const onlyMessage: OnMessage<Json> = (message) => message;

/** Parses one JSON message; a body that is not JSON (a proxy's error page, a cut answer) is this endpoint's failure. */
function parseThen(
  text: string,
  status: number | undefined,
  handle: (message: Json) => void,
  fail: (failure: EndpointFailure) => void,
): void {
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    fail(new EndpointFailure(`HTTP ${status}: not JSON: ${text.trim().slice(0, 200) || '(empty)'}`));
    return;
  }
  if (message === null || typeof message !== 'object') fail(new EndpointFailure(`HTTP ${status}: not a JSON object`));
  else handle(message as Json);
}

/**
 * The gRPC error in a message, if it is one: `{error, code, message}` for a unary call,
 * `{error: {grpc_code, message}}` inside a stream. Unavailable is this endpoint's failure (another
 * member may serve the call); any other code is the server's answer, an EtcdError.
 */
function grpcError(message: Json, endpoint: Endpoint): Error | null {
  let code: number | undefined;
  let text: string | undefined;
  if (typeof message.code === 'number' && typeof message.message === 'string') {
    code = message.code;
    text = message.message;
  } else if (message.error !== null && typeof message.error === 'object') {
    const inner = message.error as { grpc_code?: number; message?: string };
    code = inner.grpc_code ?? 2;
    text = inner.message ?? JSON.stringify(inner);
  }
  if (code === undefined) return null;
  if (code === GRPC_UNAVAILABLE) return new EndpointFailure(`unavailable: ${text}`, code);
  return new EtcdError(`etcd on ${endpoint.name}: ${text} (gRPC code ${code})`, { endpoint: endpoint.name, grpcCode: code });
}

/** A socket error (refused, reset, TLS) is this endpoint's failure. */
function connectionFailure(error: Error): Error {
  const code = (error as { code?: string }).code;
  return new EndpointFailure(code && !error.message.includes(code) ? `${code}: ${error.message}` : error.message);
}

/** A streamed message's `result` (the gateway wraps each one). */
function streamResult(message: Json): Json {
  const result = message.result;
  return result !== null && typeof result === 'object' ? (result as Json) : {};
}

function headerOf(answer: Json): Json {
  const header = answer.header;
  return header !== null && typeof header === 'object' ? (header as Json) : {};
}

function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

function toKv(raw: RawKv): EtcdKv {
  return {
    key: Buffer.from(raw.key ?? '', 'base64').toString('utf8'),
    value: Buffer.from(raw.value ?? '', 'base64').toString('utf8'),
    createRevision: raw.create_revision ?? '0',
    modRevision: raw.mod_revision ?? '0',
    lease: raw.lease ?? '0',
  };
}

/**
 * The end of the range of keys starting with `prefix` (etcd's GetPrefixRangeEnd): the prefix with
 * its last byte below 0xff incremented and what follows dropped; all keys (`\0`) when there is none.
 */
export function prefixEnd(prefix: Buffer): Buffer {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i]! < 0xff) {
      const end = Buffer.from(prefix.subarray(0, i + 1));
      end[i] = prefix[i]! + 1;
      return end;
    }
  }
  return Buffer.from([0]);
}
