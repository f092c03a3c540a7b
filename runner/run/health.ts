// HTTP health through the ingress: the app must answer at https://<domain><path> the way a browser
// reaches it — TCP to the ingress, TLS with SNI and Host set to the domain, the certificate verified
// against the system CAs plus CCCI_INGRESS_CA. Retried until the status is accepted or the timeout
// passes; the run's AbortSignal ends the wait at once. docs/recipes.md#health
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { rootCertificates } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';

import { InputError } from '../../lib/errors.js';
import type { Log } from '../host/log.js';
import { timings } from '../host/timings.js';
import type { HealthContract } from './contract.js';
import type { Check } from './results.js';

/** Where and how to reach apps: from CCCI_INGRESS, CCCI_INGRESS_CA and CCCI_HEALTH. */
export interface IngressConfig {
  /** Off (CCCI_HEALTH=off): no request is made; each check is recorded as skipped. */
  enabled: boolean;
  host: string;
  port: number;
  /** `host:port` as CCCI_INGRESS gave it (what hooks and tests get, and what the log names). */
  address: string;
  /** The CA file named by CCCI_INGRESS_CA, or null. */
  caFile: string | null;
  /** The system CAs, plus CCCI_INGRESS_CA's certificates when set. */
  ca: string[];
}

export const DEFAULT_INGRESS = '127.0.0.1:443';

/** Reads and checks the ingress settings; a bad one is an InputError naming its variable. */
export function parseIngress(env: NodeJS.ProcessEnv = process.env): IngressConfig {
  const health = env.CCCI_HEALTH ?? 'on';
  if (health !== 'on' && health !== 'off') throw new InputError(`CCCI_HEALTH must be on or off, got ${JSON.stringify(health)}`);
  const text = env.CCCI_INGRESS || DEFAULT_INGRESS;
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/.exec(text);
  const port = match ? Number(match[2]) : 0;
  if (!match || port < 1 || port > 65535)
    throw new InputError(`CCCI_INGRESS must be host:port (such as 127.0.0.1:443), got ${JSON.stringify(text)}`);
  const caFile = env.CCCI_INGRESS_CA || null;
  const ca = [...rootCertificates];
  if (caFile !== null) {
    let pem: string;
    try {
      pem = readFileSync(caFile, 'utf8');
    } catch (error) {
      throw new InputError(`CCCI_INGRESS_CA=${caFile} cannot be read: ${(error as Error).message}`, { path: caFile });
    }
    if (!pem.includes('-----BEGIN CERTIFICATE-----'))
      throw new InputError(`CCCI_INGRESS_CA=${caFile} holds no PEM certificate`, { path: caFile });
    ca.push(pem);
  }
  return { enabled: health === 'on', host: match[1]!.replace(/^\[|\]$/g, ''), port, address: text, caFile, ca };
}

/** The check a recipe's ccci.yml `health` asks for. */
export function healthSpec(health: HealthContract): HealthSpec {
  return { path: health.path, status: health.status, timeoutMs: health.timeoutSeconds * 1000 };
}

export interface HealthSpec {
  /** The path requested, starting with `/`. */
  path: string;
  /** Statuses accepted; null: any of 200-399. */
  status: number[] | null;
  timeoutMs: number;
}

const RETRY_MS = 1_000;
const ATTEMPT_TIMEOUT_MS = 10_000;

/** One request: resolves with the status, rejects with the connection or TLS error. */
function attempt(ingress: IngressConfig, domain: string, path: string, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: ingress.host,
      port: ingress.port,
      servername: domain,
      path,
      method: 'GET',
      headers: { Host: domain, 'User-Agent': 'cc-ci health check' },
      ca: ingress.ca,
      agent: false,
      timeout: ATTEMPT_TIMEOUT_MS,
      signal,
    });
    req.on('response', (response) => {
      response.resume(); // the body is not needed: the status says it
      resolve(response.statusCode ?? 0);
    });
    req.on('timeout', () =>
      req.destroy(Object.assign(new Error(`no answer within ${ATTEMPT_TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' })),
    );
    req.on('error', reject);
    req.end();
  });
}

function accepted(spec: HealthSpec, status: number): boolean {
  return spec.status === null ? status >= 200 && status <= 399 : spec.status.includes(status);
}

/**
 * Waits until `https://<domain><path>` answers an accepted status through the ingress. Resolves
 * with the check's record: pass; skip when CCCI_HEALTH=off; fail, its reason naming the URL, the
 * last status or connection error and how long it tried. An abort rejects with its reason.
 */
export function checkHealth(options: HealthCheckOptions): Promise<Check> {
  return timings.span(`health https://${options.domain}${options.spec.path}`, () => waitForHealth(options));
}

interface HealthCheckOptions {
  ingress: IngressConfig;
  domain: string;
  spec: HealthSpec;
  signal: AbortSignal;
  log: Log;
}

async function waitForHealth(options: HealthCheckOptions): Promise<Check> {
  const { ingress, domain, spec, signal, log } = options;
  const url = `https://${domain}${spec.path}`;
  const name = `health ${url}`;
  if (!ingress.enabled) {
    log(`== health: ${url} not checked (CCCI_HEALTH=off) ==`);
    return { name, verdict: 'skip', reason: 'CCCI_HEALTH=off', durationMs: 0 };
  }
  const via = ingress.address;
  const wanted = spec.status ? spec.status.join(' or ') : '200-399';
  log(`== health: waiting for ${url} to answer ${wanted} through ${via} (up to ${Math.round(spec.timeoutMs / 1000)} s) ==`);
  const started = Date.now();
  let last = 'no attempt made';
  for (let tries = 1; ; tries++) {
    signal.throwIfAborted();
    try {
      const status = await timings.outsideOf(() => attempt(ingress, domain, spec.path, signal));
      if (accepted(spec, status)) {
        log(`== health: ${url} answered ${status} through ${via} (${tries} ${tries === 1 ? 'try' : 'tries'}) ==`);
        return { name, verdict: 'pass', durationMs: Date.now() - started };
      }
      last = `status ${status}`;
    } catch (error) {
      signal.throwIfAborted();
      const e = error as NodeJS.ErrnoException;
      last = e.code ? `${e.code}: ${e.message}` : e.message;
    }
    const waited = Date.now() - started;
    if (waited + RETRY_MS > spec.timeoutMs) {
      const reason = `${url} did not answer ${wanted} through ${via} within ${Math.round(waited / 1000)} s (${tries} tries); last: ${last}`;
      return { name, verdict: 'fail', reason, durationMs: waited };
    }
    // Waiting for the app to come up: docker's and the app's time, not cc-ci's.
    await timings.outsideOf(() => sleep(RETRY_MS, undefined, { signal }));
  }
}
