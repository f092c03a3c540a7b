// The checks of `cc-ci doctor` that look at the host: Node, the addon, docker and the swarm, abra,
// the lock and runs dirs, the ingress's TLS, the warm apps and the room for DRONE_RUNNER_CAPACITY
// runs. Each resolves with rows and never throws (doctor.ts turns a bug into a fail row too); each
// has a timeout; none creates, writes or changes anything, and none follows a path another local
// user could have planted further than the run itself would (docs/threat-model.md).
import { accessSync, constants, lstatSync, readFileSync, statfsSync, statSync } from 'node:fs';
import { freemem } from 'node:os';
import { dirname } from 'node:path';
import { connect } from 'node:tls';

import type { EtcdSettings } from '../../lib/lock-backend.js';
import type { IngressConfig } from '../run/health.js';
import { type DockerInfo, engineSocket } from './engine.js';
import { exec } from './exec.js';

export type Status = 'pass' | 'warn' | 'fail';

/** One row of the report: `fix` says what to do, for a warn or a fail. */
export interface Check {
  name: string;
  status: Status;
  detail: string;
  fix?: string;
}

const pass = (name: string, detail: string): Check => ({ name, status: 'pass', detail });
const warn = (name: string, detail: string, fix: string): Check => ({ name, status: 'warn', detail, fix });
const fail = (name: string, detail: string, fix: string): Check => ({ name, status: 'fail', detail, fix });

/** The first line of an error's message: a row is one line. */
export function why(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
}

const GIB = 1024 ** 3;
/** What one concurrent run needs, for the DRONE_RUNNER_CAPACITY check (docs/operations.md#cc-ci-doctor). */
export const PER_RUN = {
  /** Memory: an app or two of a recipe under test, abra, node and git. */
  memory: 1 * GIB,
  /** Docker's data root: the recipe's images, its volumes and a backup's copies of them. */
  dockerDisk: 2 * GIB,
  /** The runs dir: the run's log, results, recipe clone and tests (kept after the run). */
  runsDisk: 0.25 * GIB,
} as const;

const ABRA_TIMEOUT_MS = 10_000;
const APP_LS_TIMEOUT_MS = 30_000;
const TLS_TIMEOUT_MS = 5_000;

/** Node: >= 20.19, on a supported line (20, 22, 24). */
export function checkNode(version = process.versions.node): Check {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  const name = 'node';
  if (major < 20 || (major === 20 && minor < 19))
    return fail(name, `Node ${version} is too old (cc-ci needs >= 20.19)`, 'install Node 22 or 24 (or 20.19+)');
  if (![20, 22, 24].includes(major))
    return warn(name, `Node ${version} is not a supported line (20, 22, 24)`, 'install Node 22 or 24, the lines cc-ci is tested on');
  return pass(name, `Node ${version}`);
}

/** The addon: it loads, and from which file. */
export async function checkAddon(): Promise<Check> {
  try {
    const { addonPath } = await import('../../lib/native.js');
    return pass('addon', `loaded ${addonPath}`);
  } catch (error) {
    return fail('addon', `the native addon does not load: ${why(error)}`, 'rebuild it: npm rebuild cc-ci (needs a C++ toolchain)');
  }
}

/** docker answers, and this node is an active swarm manager. */
export function checkDocker(info: PromiseSettledResult<DockerInfo>): Check {
  const name = 'docker';
  const where = engineSocket() ?? process.env.DOCKER_HOST;
  if (info.status === 'rejected')
    return fail(name, `docker does not answer at ${where}: ${why(info.reason)}`, 'start dockerd, or point DOCKER_HOST at it');
  const { ServerVersion: version = '?', Swarm: swarm = {} } = info.value;
  if (swarm.LocalNodeState !== 'active')
    return fail(name, `docker ${version}: this node is not in a swarm (state ${swarm.LocalNodeState ?? 'unknown'})`, 'docker swarm init');
  if (swarm.ControlAvailable !== true)
    return fail(name, `docker ${version}: this node is a swarm worker, not a manager`, 'run cc-ci on a manager node');
  return pass(name, `docker ${version}, swarm manager (node ${swarm.NodeID ?? '?'})`);
}

/** `abra --version`: on PATH, and not the test-only stand-in. */
export async function checkAbra(): Promise<Check> {
  let version: string;
  try {
    version = (await exec('abra', ['--version'], { timeoutMs: ABRA_TIMEOUT_MS })).stdout.trim();
  } catch (error) {
    return fail('abra', why(error), 'install abra (https://docs.coopcloud.tech/abra/install/) on the PATH of the CI runner');
  }
  if (version.includes('ccci-test-fixture'))
    return warn('abra', `${version}: the test-only stand-in, not abra`, 'put the real abra before tests/fixtures/abra on PATH');
  return pass('abra', version || 'abra (printed no version)');
}

/** The nearest dir at or above `path` that exists, and whether this user may create entries in it. */
function nearestParent(path: string): { dir: string; writable: boolean } {
  let dir = dirname(path);
  for (;;) {
    try {
      statSync(dir);
      break;
    } catch {
      if (dir === dirname(dir)) break;
      dir = dirname(dir);
    }
  }
  return { dir, writable: writable(dir) };
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The lock dir: exists (or a run can create it), passes the lock code's own refusals, writable. */
export async function checkLockDirSafe(): Promise<Check> {
  const name = 'lock dir';
  const { checkLockDir, lockDir } = await import('../../lib/lockfiles.js');
  const dir = lockDir();
  if (!exists(dir)) {
    const parent = nearestParent(dir);
    if (parent.dir === dirname(dir) && parent.writable)
      return warn(name, `${dir} does not exist; the first run creates it 0755`, `create it now: mkdir -m 0755 ${dir}`);
    return fail(name, `${dir} does not exist and cannot be created (${parent.dir} is the nearest dir)`, `mkdir -p -m 0755 ${dir}`);
  }
  try {
    checkLockDir(dir);
  } catch (error) {
    return fail(name, why(error), `chmod 0755 ${dir}, or 1777 (sticky) for a dir shared with other users`);
  }
  if (!writable(dir)) return fail(name, `${dir}: this user cannot create lockfiles there`, `run as its owner, or chown it to this user`);
  return pass(name, `${dir} (mode ${(statSync(dir).mode & 0o7777).toString(8)})`);
}

/** The runs dir: passes the run's own rules and is writable; a missing one is a warn (never created here). */
export async function checkRunsDirSafe(): Promise<Check> {
  const name = 'runs dir';
  const { checkRunsDir, runsDir } = await import('../../lib/abra-dir.js');
  const dir = runsDir();
  if (!exists(dir)) {
    const parent = nearestParent(dir);
    return parent.writable
      ? warn(name, `${dir} does not exist; the first run creates it 0755 in ${parent.dir}`, `create it now: mkdir -p -m 0755 ${dir}`)
      : warn(name, `${dir} does not exist, and this user cannot create it in ${parent.dir}`, `as root: mkdir -p -m 0755 ${dir}`);
  }
  try {
    checkRunsDir();
  } catch (error) {
    return fail(name, why(error), `use a dir only this user (or root) owns and writes to: chmod 0755 ${dir}`);
  }
  if (!writable(dir)) return fail(name, `${dir}: this user cannot write there`, `run as its owner, or chown it to this user`);
  return pass(name, `${dir} (mode ${(statSync(dir).mode & 0o7777).toString(8)})`);
}

/** A TLS handshake with the ingress for a name under the base domain, verified as a health check verifies it. */
export function checkIngressTls(ingress: IngressConfig, base: string): Promise<Check> {
  const name = 'ingress';
  const servername = `doctor-check.${base}`;
  const target = `${ingress.address} (SNI ${servername})`;
  return new Promise((resolve) => {
    const socket = connect({ host: ingress.host, port: ingress.port, servername, ca: ingress.ca, timeout: TLS_TIMEOUT_MS });
    const done = (check: Check): void => {
      socket.destroy();
      resolve(check);
    };
    socket.once('secureConnect', () => {
      const issuer = socket.getPeerCertificate().issuer ?? {};
      done(pass(name, `${target}: certificate verified, issued by ${issuer.CN ?? issuer.O ?? 'an unnamed CA'}`));
    });
    socket.once('timeout', () =>
      done(
        fail(
          name,
          `${target}: no TLS handshake within ${TLS_TIMEOUT_MS / 1000} s`,
          'check that the ingress runs and CCCI_INGRESS points at it',
        ),
      ),
    );
    socket.once('error', (error: NodeJS.ErrnoException) => {
      const code = error.code ?? 'error';
      if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENOTFOUND')
        done(fail(name, `${target}: ${code}: ${error.message}`, 'start the ingress, or point CCCI_INGRESS at it'));
      else
        done(
          fail(
            name,
            `${target}: the certificate does not verify: ${code}: ${error.message}`,
            'set CCCI_INGRESS_CA to the PEM of the CA the ingress uses (an internal CA), or give it a publicly trusted certificate',
          ),
        );
    });
  });
}

/** Each warm app is one abra knows on the run's server (`abra app ls --machine`, the canonical ~/.abra). */
export async function checkWarmApps(domains: string[], server: string): Promise<Check> {
  const name = 'warm apps';
  const { parseAbraAppLs } = await import('./discovery.js');
  let known: Set<string>;
  try {
    const { stdout } = await exec('abra', ['app', 'ls', '--machine', '--server', server], {
      timeoutMs: APP_LS_TIMEOUT_MS,
      env: { ABRA_DIR: undefined },
    });
    known = new Set(parseAbraAppLs(stdout));
  } catch (error) {
    return fail(name, `cannot list the apps of server ${server}: ${why(error)}`, 'make `abra app ls --machine` work for this user');
  }
  const missing = domains.filter((domain) => !known.has(domain));
  if (missing.length > 0)
    return fail(name, `no app on server ${server} for ${missing.join(', ')}`, 'abra app new + deploy it, or drop it from CCCI_WARM_APPS');
  return pass(name, `${domains.length} on server ${server}: ${domains.join(', ')}`);
}

/** `DRONE_RUNNER_CAPACITY`: a whole number from 1 to 1000, or an error message. */
export function parseCapacity(text: string): number | string {
  if (!/^[1-9][0-9]{0,3}$/.test(text) || Number(text) > 1000)
    return `DRONE_RUNNER_CAPACITY must be a whole number from 1 to 1000, got ${JSON.stringify(text)}`;
  return Number(text);
}

const gib = (bytes: number): string => `${(bytes / GIB).toFixed(1)} GiB`;

/** `free` against `need`: below the need a warn, below half of it a fail. */
function room(name: string, what: string, free: number, need: number, capacity: number, fix: string): Check {
  const detail = `${gib(free)} free ${what}, ${capacity} run${capacity === 1 ? '' : 's'} need ${gib(need)}`;
  if (free < need / 2) return fail(name, detail, fix);
  if (free < need) return warn(name, detail, fix);
  return pass(name, detail);
}

/** The free space of the filesystem holding `path` (or its nearest existing parent), and its device. */
function freeSpace(path: string): { free: number; dev: number; at: string } {
  const at = exists(path) ? path : nearestParent(path).dir;
  const stats = statfsSync(at);
  return { free: stats.bavail * stats.bsize, dev: statSync(at).dev, at };
}

/** MemAvailable from /proc/meminfo (what can be had without swapping); os.freemem() without it. */
function availableMemory(): number {
  const match = /^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return match ? Number(match[1]) * 1024 : freemem();
}

/** Memory and disk (runs dir, docker's data root) for `capacity` concurrent runs. */
export async function checkCapacity(capacity: number, info: PromiseSettledResult<DockerInfo>): Promise<Check[]> {
  const { runsDir } = await import('../../lib/abra-dir.js');
  const fixMore = (what: string): string => `free ${what}, or lower DRONE_RUNNER_CAPACITY`;
  const checks = [room('memory', 'memory', availableMemory(), capacity * PER_RUN.memory, capacity, fixMore('memory (or add some)'))];
  const runs = freeSpace(runsDir());
  const root = info.status === 'fulfilled' ? info.value.DockerRootDir : undefined;
  if (root === undefined) {
    checks.push(warn('disk: docker', 'docker data root not checked: docker did not answer', 'see the docker row'));
  } else if (engineSocket() === null || !exists(root)) {
    checks.push(warn('disk: docker', `docker data root ${root} is not on this host: not checked`, 'run doctor on the docker host'));
  } else {
    const docker = freeSpace(root);
    if (docker.dev === runs.dev) {
      // One filesystem holds both: the needs add up.
      const need = capacity * (PER_RUN.dockerDisk + PER_RUN.runsDisk);
      checks.push(room('disk', `in ${root} and ${runs.at}`, docker.free, need, capacity, fixMore(`space on ${root}`)));
      return checks;
    }
    checks.push(room('disk: docker', `in ${root}`, docker.free, capacity * PER_RUN.dockerDisk, capacity, fixMore(`space on ${root}`)));
  }
  checks.push(room('disk: runs dir', `in ${runs.at}`, runs.free, capacity * PER_RUN.runsDisk, capacity, fixMore(`space on ${runs.at}`)));
  return checks;
}

/**
 * The lock backend against this swarm: flock on a swarm of several nodes is a warn (a janitor on
 * one node cannot see another node's locks); etcd: every endpoint answers, and all name one leader.
 * docs/scale-out.md
 */
export async function checkLockBackend(etcd: EtcdSettings | null, info: PromiseSettledResult<DockerInfo>): Promise<Check> {
  const name = 'lock backend';
  const nodes = info.status === 'fulfilled' ? (info.value.Swarm?.Nodes ?? 1) : 1;
  if (etcd === null) {
    return nodes > 1
      ? warn(
          name,
          `flock on a swarm of ${nodes} nodes: a janitor on one node cannot see another node's locks`,
          'with a runner on more than one node, set CCCI_LOCK_BACKEND=etcd on every runner (docs/scale-out.md)',
        )
      : pass(name, 'flock (this host only)');
  }
  const { EtcdClient } = await import('../../lib/etcd.js');
  const client = new EtcdClient({ endpoints: etcd.endpoints, ca: etcd.ca, cert: etcd.cert, key: etcd.key });
  const answers = await Promise.all(
    etcd.endpoints.map((endpoint) =>
      client.status(endpoint, AbortSignal.timeout(3000)).then(
        (status) => ({ endpoint, status, error: null }),
        (error: unknown) => ({ endpoint, status: null, error: why(error) }),
      ),
    ),
  );
  const down = answers.filter((answer) => answer.status === null);
  const leaders = new Set(answers.flatMap((answer) => (answer.status ? [answer.status.leader] : [])));
  if (down.length === answers.length)
    return fail(
      name,
      `etcd: no endpoint answers (${down.map((d) => `${d.endpoint}: ${d.error}`).join('; ')})`,
      'check CCCI_ETCD_ENDPOINTS and the members',
    );
  if (leaders.size !== 1 || leaders.has('0'))
    return fail(name, `etcd: the members name ${leaders.size} leaders`, 'check the cluster: etcdctl endpoint status --cluster');
  const detail = `etcd, ${answers.length - down.length}/${answers.length} endpoints answer, one leader; lease ${etcd.leaseSeconds} s, renew ${etcd.renewSeconds} s, abort ${etcd.abortSeconds} s`;
  return down.length > 0
    ? warn(name, `${detail}; down: ${down.map((d) => d.endpoint).join(', ')}`, 'bring the members back')
    : pass(name, detail);
}
