// Which app lock this host's runs share: `flock` (the default, one host) or `etcd` (one swarm over
// several nodes, each with its own runner). Read and validated once, at the boundary: a bad value
// is an InputError naming the variable (exit 2). docs/scale-out.md
import { InputError } from './errors.js';

export type LockBackendName = 'flock' | 'etcd';

/** `CCCI_LOCK_BACKEND`: `flock` (default) or `etcd`. */
export function lockBackendName(env: NodeJS.ProcessEnv = process.env): LockBackendName {
  const text = env.CCCI_LOCK_BACKEND || 'flock';
  if (text !== 'flock' && text !== 'etcd') throw new InputError(`CCCI_LOCK_BACKEND must be flock or etcd, got ${JSON.stringify(text)}`);
  return text;
}

export interface EtcdSettings {
  endpoints: string[];
  /** PEM text of the CA, client certificate and key (CCCI_ETCD_CA, _CERT, _KEY), when set. */
  ca?: string;
  cert?: string;
  key?: string;
  leaseSeconds: number;
  renewSeconds: number;
  abortSeconds: number;
  /** How long the abort itself may take once the deadline passed; also the slack kept before the TTL. */
  abortTimeSeconds: number;
  /** This runner's name in a holder's record (CCCI_HOST_ID, else the hostname). */
  host: string;
}

function seconds(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const text = env[name] ?? String(fallback);
  if (!/^[1-9][0-9]{0,4}$/.test(text)) throw new InputError(`${name} must be a whole number of seconds, got ${JSON.stringify(text)}`);
  return Number(text);
}

function pemFile(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const path = env[name];
  if (!path) return undefined;
  if (!path.startsWith('/')) throw new InputError(`${name} must be an absolute path, got ${JSON.stringify(path)}`);
  try {
    return process.getBuiltinModule('node:fs').readFileSync(path, 'utf8');
  } catch (error) {
    throw new InputError(`${name} ${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
}

/**
 * The etcd backend's settings. The lease must outlast the run's own abort: TTL >= abort deadline +
 * abort time + slack (abort time and slack are one renewal each), and the deadline must span at
 * least three renewals, so one lost renewal never aborts a run. docs/scale-out.md#settings
 */
export function etcdSettings(env: NodeJS.ProcessEnv = process.env): EtcdSettings {
  const list = (env.CCCI_ETCD_ENDPOINTS ?? '').trim();
  if (!list)
    throw new InputError('CCCI_ETCD_ENDPOINTS is required with CCCI_LOCK_BACKEND=etcd (comma-separated URLs such as http://10.0.0.1:2379)');
  const endpoints = list.split(',').map((url) => url.trim().replace(/\/+$/, ''));
  for (const url of endpoints) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || !['http:', 'https:'].includes(parsed.protocol) || parsed.pathname !== '/' || parsed.search) {
      throw new InputError(`CCCI_ETCD_ENDPOINTS: ${JSON.stringify(url)} is not an http(s)://host:port URL`);
    }
  }
  const leaseSeconds = seconds(env, 'CCCI_ETCD_LEASE_SECONDS', 30);
  const renewSeconds = seconds(env, 'CCCI_ETCD_RENEW_SECONDS', 5);
  const abortSeconds = seconds(env, 'CCCI_ETCD_ABORT_SECONDS', 20);
  if (abortSeconds < 3 * renewSeconds) {
    throw new InputError(
      `CCCI_ETCD_ABORT_SECONDS (${abortSeconds}) must be at least three renewals (3 × CCCI_ETCD_RENEW_SECONDS = ${3 * renewSeconds})`,
    );
  }
  if (leaseSeconds < abortSeconds + 2 * renewSeconds) {
    throw new InputError(
      `CCCI_ETCD_LEASE_SECONDS (${leaseSeconds}) must be at least the abort deadline plus the abort time and slack ` +
        `(CCCI_ETCD_ABORT_SECONDS + 2 × CCCI_ETCD_RENEW_SECONDS = ${abortSeconds + 2 * renewSeconds})`,
    );
  }
  const host = env.CCCI_HOST_ID || process.getBuiltinModule('node:os').hostname();
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(host))
    throw new InputError(`CCCI_HOST_ID must be a host name, got ${JSON.stringify(host)}`);
  const settings: EtcdSettings = { endpoints, leaseSeconds, renewSeconds, abortSeconds, abortTimeSeconds: renewSeconds, host };
  const ca = pemFile(env, 'CCCI_ETCD_CA');
  const cert = pemFile(env, 'CCCI_ETCD_CERT');
  const key = pemFile(env, 'CCCI_ETCD_KEY');
  if ((cert === undefined) !== (key === undefined))
    throw new InputError('CCCI_ETCD_CERT and CCCI_ETCD_KEY go together: set both or neither');
  if (ca !== undefined) settings.ca = ca;
  if (cert !== undefined) settings.cert = cert;
  if (key !== undefined) settings.key = key;
  return settings;
}
