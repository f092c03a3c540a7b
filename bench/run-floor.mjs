// The floor of `npm run bench run`: a cold five-stage run of the demo recipe done by a plain
// script. The same abra commands as `cc-ci run` (same syntax), the same docker and git steps, and
// waits that react only to docker's own events: the Engine API's event stream, opened before the
// first action, and the state re-checked only when an event for the stack arrives. Built-ins only,
// nothing of cc-ci's, so the time it takes is what the steps themselves cost.
//
//   node run-floor.mjs --domain <d> --work <dir> [--recipe ccci-demo] [--server default]
//                      [--ingress 127.0.0.1:443] [--ca <pem>]
//
// Environment: PATH (abra first), HOME (abra's canonical dir is ~/.abra), and what abra needs.
// Prints one JSON line last: {"wallMs", "reaction", "delivery"}, each of the last two {events,
// medianMs, p90Ms, maxMs}: reaction is event → the check it set off (events that came while a wait
// was on), delivery is event → its arrival here (every event of the stack). Exits 1 on any
// failure, after removing the app.
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync } from 'node:fs';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const started = performance.now();
const { values: opt } = parseArgs({
  options: {
    domain: { type: 'string' },
    work: { type: 'string' },
    recipe: { type: 'string', default: 'ccci-demo' },
    server: { type: 'string', default: 'default' },
    ingress: { type: 'string', default: '127.0.0.1:443' },
    ca: { type: 'string', default: process.env.CCCI_INGRESS_CA ?? '' },
  },
});
if (!opt.domain || !opt.work) {
  console.error('usage: run-floor.mjs --domain <d> --work <dir> [--recipe r] [--server s] [--ingress host:port] [--ca pem]');
  process.exit(2);
}
const { domain, recipe, server } = opt;
// abra's stack name: dots to underscores, cut to 45 characters.
const stack = domain.replaceAll('.', '_').slice(0, 45);
const [ingressHost, ingressPort] = opt.ingress.split(':');
const ca = opt.ca ? readFileSync(opt.ca, 'utf8') : undefined;
const TIMEOUT_MS = 300_000;
// After an event that did not satisfy a check: swarm's replica count can lag a container's start
// by a few ms, so look again shortly before waiting for the next event.
const RETRY_MS = [25, 50, 100, 200];
const MARKER = '.ccci-marker';

/** Wall-clock ms with a fraction, comparable with docker's event timeNano. */
const wallMs = () => performance.timeOrigin + performance.now();
const log = (line) => process.stderr.write(`[floor +${((performance.now() - started) / 1000).toFixed(3)}s] ${line}\n`);

// A per-run abra dir as cc-ci makes one: fresh recipes/, the canonical servers/ shared.
const abraDir = join(opt.work, 'abra');
mkdirSync(join(abraDir, 'recipes'), { recursive: true });
symlinkSync(join(homedir(), '.abra', 'servers'), join(abraDir, 'servers'));
const env = { ...process.env, ABRA_DIR: abraDir };
const tree = join(abraDir, 'recipes', recipe);

/** Runs a command; resolves with its stdout, rejects with its stderr when it exits non-zero. */
function run(cmd, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (err += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code ?? signal}: ${err.trim().slice(-2000)}`)),
    );
  });
}
const abra = (...args) => {
  log(`$ abra ${args.join(' ')}`);
  return run('abra', args);
};
const docker = (...args) => run('docker', args);
const git = (...args) => run('git', ['-C', tree, ...args]);
const lines = (text) =>
  text
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);

// ---- docker's event stream: every service, container and network event, from before the first action.
let seq = 0; // events for the stack so far
let checkedSeq = 0; // the last of them a check has seen
let waiting = false;
let pending = []; // timeNano (as ms) of the events that arrived while waiting, not yet checked
const latencies = []; // event → the check it set off, for events that arrived while waiting
const deliveries = []; // event → its arrival here, for every event of the stack: no reaction can be faster
let wake = null;
let streamError = null;

const filters = encodeURIComponent(JSON.stringify({ type: ['service', 'container', 'network'] }));
const events = request({ socketPath: '/var/run/docker.sock', path: `/events?since=${(wallMs() / 1000).toFixed(3)}&filters=${filters}` });
const ended = (error) => {
  streamError ??= error;
  wake?.();
};
events.on('error', ended);
events.on('response', (response) => {
  if (response.statusCode !== 200) ended(new Error(`docker's event stream answered ${response.statusCode}`));
  let buffer = '';
  response.setEncoding('utf8');
  response.on('data', (chunk) => {
    buffer += chunk;
    let newline = buffer.indexOf('\n');
    while (newline >= 0) {
      onEvent(JSON.parse(buffer.slice(0, newline)));
      buffer = buffer.slice(newline + 1);
      newline = buffer.indexOf('\n');
    }
  });
  response.on('end', () => ended(new Error("docker's event stream ended")));
});
events.end();

function onEvent(event) {
  const attributes = event.Actor?.Attributes ?? {};
  const ours =
    event.Type === 'container' ? attributes['com.docker.stack.namespace'] === stack : (attributes.name ?? '').startsWith(`${stack}_`);
  // A healthcheck's exec_create/exec_start/exec_die change nothing a check reads: its outcome comes
  // as health_status.
  if (!ours || event.Action.startsWith('exec_')) return;
  seq++;
  deliveries.push(wallMs() - event.timeNano / 1e6);
  if (waiting) pending.push(event.timeNano / 1e6);
  wake?.();
}

/** Resolves at the next event for the stack, or after `ms`. */
function nextEvent(ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      wake = null;
      resolve();
    }
    wake = done;
  });
}

/** Waits until `check()` resolves null (else it says what is missing), checking only on docker's events. */
async function waitFor(what, check) {
  const deadline = Date.now() + TIMEOUT_MS;
  let retries = RETRY_MS.length; // no re-check without an event first
  let last = 'no event for the stack';
  let first = true; // one look at the state the last action left (it may have made no event at all)
  waiting = true;
  pending = [];
  try {
    for (;;) {
      if (streamError) throw streamError;
      if (seq === checkedSeq && !first) {
        const retry = retries < RETRY_MS.length;
        const delay = retry ? RETRY_MS[retries++] : deadline - Date.now();
        if (delay <= 0) throw new Error(`${what}: not within ${TIMEOUT_MS / 1000} s: ${last}`);
        await nextEvent(delay);
        if (seq === checkedSeq && !retry) continue;
      }
      if (seq > checkedSeq) retries = 0;
      first = false;
      checkedSeq = seq;
      const began = wallMs();
      for (const at of pending) latencies.push(began - at);
      pending = [];
      last = await check();
      if (last === null) return;
    }
  } finally {
    waiting = false;
  }
}

/** cc-ci's settle: every service N/N with no update in flight, no container starting or unhealthy. */
async function settled() {
  const replicas = lines(await docker('service', 'ls', '--filter', `name=${stack}_`, '--format', '{{.Name}} {{.Replicas}}')).filter(
    (line) => line.startsWith(`${stack}_`),
  );
  if (replicas.length === 0) return 'no services yet';
  const lagging = replicas.filter((line) => {
    const [, running, desired] = /^\S+\s+(\d+)\/(\d+)/.exec(line);
    return running !== desired;
  });
  if (lagging.length) return lagging.join(', ');
  const names = replicas.map((line) => line.split(' ')[0]);
  const updates = lines(await docker('service', 'inspect', ...names, '--format', '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}'));
  if (updates.some((state) => ['updating', 'rollback_started', 'paused', 'rollback_paused'].includes(state))) return `update ${updates}`;
  const containers = await docker('ps', '--filter', `label=com.docker.stack.namespace=${stack}`, '--format', '{{.Names}} {{.Status}}');
  if (containers.trim() === '') return 'no running containers';
  const starting = lines(containers).filter((line) => /\((health: starting|unhealthy)\)/.test(line));
  return starting.length ? starting.join(', ') : null;
}

/** Nothing of the stack left: services, containers, volumes, secrets, networks. */
async function gone() {
  const left = [
    ...lines(await docker('service', 'ls', '--filter', `name=${stack}_`, '--format', '{{.Name}}')),
    ...lines(await docker('ps', '-a', '--filter', `label=com.docker.stack.namespace=${stack}`, '--format', '{{.Names}}')),
    ...lines(await docker('volume', 'ls', '--filter', `name=${stack}_`, '--format', '{{.Name}}')),
    ...lines(await docker('secret', 'ls', '--filter', `name=${stack}_`, '--format', '{{.Name}}')),
    ...lines(await docker('network', 'ls', '--filter', `name=${stack}_`, '--format', '{{.Name}}')),
  ].filter((name) => name.startsWith(`${stack}_`));
  return left.length ? `left: ${left.join(', ')}` : null;
}

/** One GET of https://<domain>/ through the ingress, SNI and Host the domain, verified against the CA. */
function get() {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: ingressHost,
      port: Number(ingressPort),
      servername: domain,
      path: '/',
      headers: { Host: domain },
      ca,
      agent: false,
      timeout: 10_000,
    });
    req.on('response', (response) => {
      response.resume();
      resolve(response.statusCode);
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
    req.end();
  });
}

/** The app answers 200-399 through the ingress; a refused or failed try is retried after 100 ms. */
async function health() {
  const deadline = Date.now() + TIMEOUT_MS;
  for (let tries = 1; ; tries++) {
    let last;
    try {
      const status = await get();
      if (status >= 200 && status <= 399) return log(`health: ${status} (${tries} ${tries === 1 ? 'try' : 'tries'})`);
      last = `status ${status}`;
    } catch (error) {
      last = error.message;
    }
    if (Date.now() > deadline) throw new Error(`https://${domain}/ did not answer 200-399: ${last}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function settle() {
  await waitFor(`stack ${stack} did not settle`, settled);
  await health();
}

/** A running container of the stack and its volume's mount point, looked up as cc-ci does each time. */
async function volumeTarget() {
  const container = lines(
    await docker('ps', '--filter', `label=com.docker.stack.namespace=${stack}`, '--filter', 'status=running', '--format', '{{.Names}}'),
  ).sort()[0];
  if (!container) throw new Error(`no running container in ${stack}`);
  const format = '{{range .Mounts}}{{if eq .Type "volume"}}{{.Destination}}\n{{end}}{{end}}';
  const mount = lines(await docker('inspect', container, '--format', format))[0];
  if (!mount) throw new Error(`${container} has no volume`);
  return { container, mount };
}
async function writeMarker(value) {
  const { container, mount } = await volumeTarget();
  await docker('exec', container, 'sh', '-c', `printf %s "$1" > "$2/${MARKER}"`, 'sh', value, mount);
}
async function readMarker(expected, what) {
  const { container, mount } = await volumeTarget();
  const found = (await docker('exec', container, 'sh', '-c', `cat "$1/${MARKER}" 2>/dev/null || true`, 'sh', mount)).trim();
  if (found !== expected) throw new Error(`${what}: found ${JSON.stringify(found)}, wanted ${JSON.stringify(expected)}`);
}

/** The recipe's tests (test_* and *.sh, sorted), each with the environment cc-ci gives them. */
async function customTests() {
  const dir = join(tree, 'tests');
  const testEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME ?? '/',
    LANG: process.env.LANG ?? 'C.UTF-8',
    DOMAIN: domain,
    STACK_NAME: stack,
    RECIPE: recipe,
    CCCI_APP_URL: `https://${domain}`,
    CCCI_INGRESS: opt.ingress,
    ...(opt.ca ? { CCCI_INGRESS_CA: opt.ca } : {}),
    CCCI_RECIPE_DIR: tree,
    ABRA_DIR: abraDir,
  };
  const tests = readdirSync(dir)
    .filter((name) => (name.startsWith('test_') || name.endsWith('.sh')) && statSync(join(dir, name)).isFile())
    .sort();
  for (const name of tests) {
    let direct = true;
    try {
      accessSync(join(dir, name), constants.X_OK);
    } catch {
      direct = false;
    }
    await run(direct ? join(dir, name) : 'sh', direct ? [] : [join(dir, name)], { cwd: dir, env: testEnv });
    log(`custom: ${name} passed`);
  }
}

async function main() {
  await abra('recipe', 'fetch', recipe, '--no-input');
  const head = (await git('rev-parse', 'HEAD')).trim();
  await abra('app', 'new', recipe, '--server', server, '--domain', domain, '--secrets', '--chaos', '--no-input');
  await abra('app', 'deploy', domain, '--no-input', '--chaos');
  // install
  await settle();
  // upgrade: the published version before the code under test, then the code under test in place
  const tags = lines(await git('tag', '--sort=v:refname'));
  const newest = (await git('rev-list', '-n', '1', tags.at(-1))).trim();
  const previous = newest === head ? tags.at(-2) : tags.at(-1);
  await git('checkout', '--quiet', '--force', previous);
  await abra('app', 'deploy', domain, previous, '--no-input', '--force');
  await settle();
  const upgradeMarker = `upgrade-floor-${Date.now()}`;
  await writeMarker(upgradeMarker);
  await git('checkout', '--quiet', '--force', head);
  await abra('app', 'deploy', domain, '--no-input', '--chaos', '--force');
  await settle();
  await readMarker(upgradeMarker, 'data written before the upgrade');
  // backup
  const backupMarker = `backup-floor-${Date.now()}`;
  await writeMarker(backupMarker);
  await abra('app', 'backup', 'create', domain, '--no-input');
  // restore
  await writeMarker('overwritten-after-backup');
  await abra('app', 'restore', domain, '--no-input');
  await settle();
  await readMarker(backupMarker, 'the restored data');
  // custom
  await customTests();
  await teardown();
}

async function teardown() {
  await abra('app', 'undeploy', domain, '--no-input');
  await abra('app', 'remove', domain, '--no-input', '--force');
  await waitFor(`${stack} was not removed`, gone);
  log('teardown: nothing left');
}

/** The value at quantile `q` of sorted values (the mean of the middle two for an even median), or null. */
function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  const at = q * (sorted.length - 1);
  return sorted[Math.floor(at)] + (sorted[Math.ceil(at)] - sorted[Math.floor(at)]) * (at - Math.floor(at));
}

function stats(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const round = (v) => (v === null ? null : Math.round(v * 10) / 10);
  return {
    events: sorted.length,
    medianMs: round(quantile(sorted, 0.5)),
    p90Ms: round(quantile(sorted, 0.9)),
    maxMs: round(sorted.at(-1) ?? null),
  };
}

try {
  await main();
  events.destroy();
  console.log(JSON.stringify({ wallMs: Math.round(performance.now() - started), reaction: stats(latencies), delivery: stats(deliveries) }));
} catch (error) {
  log(`FAILED: ${error.message}`);
  // Leave nothing behind: whatever of the app exists goes (each step may fail on a half-made app).
  await abra('app', 'undeploy', domain, '--no-input').catch(() => undefined);
  await abra('app', 'remove', domain, '--no-input', '--force').catch(() => undefined);
  await docker('stack', 'rm', stack).catch(() => undefined);
  events.destroy();
  process.exitCode = 1;
}
