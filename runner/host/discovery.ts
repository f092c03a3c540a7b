// Where the janitor's candidates come from on a real host, and how it tears an orphan down.
//
// Candidates: every app `abra app ls --machine` knows, plus every docker service whose stack is a
// run app's (that catches an app whose .env is already gone). The janitor keeps the run-app names
// and probes only those. Teardown: the runner's own teardown, which tolerates a half-gone app.
import type { Discover, Teardown } from '../../lib/janitor.js';
import { CcciError, InputError } from '../../lib/errors.js';
import { baseDomain, domainFromServiceName, stackName } from '../../lib/naming.js';
import { abraServer } from './abra.js';
import { exec } from './exec.js';
import { newerGeneration } from './generation.js';
import type { Log } from './log.js';
import { hostTools } from './tools.js';
import { teardownApp } from '../run/teardown.js';

const LIST_TIMEOUT_MS = 120_000;

export interface JanitorHooks {
  discover: Discover;
  teardown: Teardown;
}

export interface HookContext {
  log: Log;
  signal?: AbortSignal;
}

/**
 * App names in `abra app ls --machine` output: `{ "<server>": { "apps": [{ "appName", "domain",
 * … }] } }` (a bare array of apps is accepted too). Throws an InputError naming the output when it
 * is not that shape: a janitor that silently saw no apps would reap nothing and say all is well.
 */
export function parseAbraAppLs(stdout: string): string[] {
  const fail = (why: string): never => {
    const shown = stdout.length > 200 ? `${stdout.slice(0, 200)}…` : stdout;
    throw new InputError(`unparseable \`abra app ls --machine\` output (${why}): ${JSON.stringify(shown)}`);
  };
  let data: unknown;
  try {
    data = stdout.trim() === '' ? null : JSON.parse(stdout);
  } catch (error) {
    // V8 quotes the raw text in its message: keep the error on one line (the output follows, escaped).
    return fail((error as Error).message.replace(/\s*[\r\n]+\s*/g, ' '));
  }
  if (data === null) return [];
  let apps: unknown[];
  if (Array.isArray(data)) apps = data;
  else if (typeof data === 'object') {
    apps = [];
    for (const [server, status] of Object.entries(data as Record<string, unknown>)) {
      const list = (status as { apps?: unknown } | null)?.apps;
      if (list === null || list === undefined) continue;
      if (!Array.isArray(list)) fail(`server ${JSON.stringify(server)}: "apps" is not an array`);
      apps.push(...(list as unknown[]));
    }
  } else return fail('expected a JSON object of servers');
  const names = new Set<string>();
  for (const app of apps) {
    if (typeof app !== 'object' || app === null) fail(`an app entry is not an object: ${JSON.stringify(app)}`);
    const { appName, domain } = app as { appName?: unknown; domain?: unknown };
    if (typeof appName !== 'string' && typeof domain !== 'string') fail(`an app entry has no appName or domain: ${JSON.stringify(app)}`);
    if (typeof appName === 'string' && appName) names.add(appName);
    if (typeof domain === 'string' && domain) names.add(domain);
  }
  return [...names];
}

/** Run-app domains behind `docker service|volume|secret|network ls --format '{{.Name}}'` lines (`<stack>_<name>`). */
export function domainsOfServices(stdout: string, base = baseDomain()): string[] {
  const domains = new Set<string>();
  for (const line of stdout.split('\n')) {
    const domain = domainFromServiceName(line.trim(), base);
    if (domain !== null) domains.add(domain);
  }
  return [...domains];
}

/**
 * Every app name abra knows, plus every run-app stack that still owns a docker service, volume,
 * secret or network: a teardown cut short after `abra app remove` took the `.env` (and the
 * services) must still be found, or what it left would outlive every sweep. Sorted, no duplicates.
 */
export async function discoverApps(context: Partial<HookContext> = {}): Promise<string[]> {
  const base = baseDomain();
  const options = { signal: context.signal, quiet: true, timeoutMs: LIST_TIMEOUT_MS, tag: '[docker]' };
  const [abra, ...docker] = await Promise.all([
    exec('abra', ['app', 'ls', '--machine'], { ...options, tag: '[abra]' }),
    ...['service', 'volume', 'secret', 'network'].map((kind) => exec('docker', [kind, 'ls', '--format', '{{.Name}}'], options)),
  ]);
  const stacks = docker.flatMap((listing) => domainsOfServices(listing.stdout, base));
  return [...new Set([...parseAbraAppLs(abra!.stdout), ...stacks])].sort();
}

/** The janitor's hooks on a real host: abra + docker discovery, the runner's teardown (verified). */
export function defaultJanitorHooks(context: HookContext): JanitorHooks {
  const { log, signal } = context;
  return {
    discover: () => discoverApps({ signal }),
    teardown: async (domain: string, generation?: string) => {
      // On etcd: an app a newer holder labelled is not this sweep's to reap (runner/host/generation.ts).
      const tools = hostTools({ server: abraServer(), log, signal });
      const newer = generation === undefined ? null : await newerGeneration(tools.docker, stackName(domain), generation, signal);
      if (newer !== null)
        throw new CcciError(
          'ERR_CCCI_NEWER_GENERATION',
          `${domain} carries generation ${newer}, newer than this sweep's ${generation}: left alone`,
        );
      await teardownApp(domain, tools, true);
    },
  };
}
