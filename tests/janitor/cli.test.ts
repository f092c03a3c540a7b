// `cc-ci locks` and `cc-ci janitor` as a user runs them: the built CLI, real locks held by real
// processes, and test-only `abra` and `docker` scripts first on PATH for discovery and teardown.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import type { AppLockInfo } from '../../lib/lockfiles.js';
import type { JanitorReport } from '../../lib/janitor.js';
import { lockPath } from '../../lib/lockfiles.js';
import { probeLock } from '../../lib/lock.js';
import { stackName } from '../../lib/naming.js';
import { domainsOfServices, parseAbraAppLs } from '../../runner/host/discovery.js';
import { liveRun, orphan, runApp } from '../support/janitor-fixtures.js';
import { startCli, tempDir, useHelpers, type Exit, type Helper } from '../support/processes.js';

const { lockDir } = useHelpers();

/** Runs the CLI to completion; stdout is kept apart from stderr (JSON goes to stdout). */
async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Exit & { stdout: string; run: Helper }> {
  const run = startCli(args, { env });
  let stdout = '';
  run.child.stdout!.on('data', (chunk: string) => (stdout += chunk));
  const exit = await run.exited;
  return { ...exit, stdout, run };
}

// Just enough abra and docker for discovery and the runner's teardown: abra lists apps.json;
// docker lists the services in `services` minus the stacks `stack rm` removed; both log argv.
const FAKE_ABRA = `#!/bin/sh
echo "abra $*" >> "$FAKE_STATE/calls"
if [ "$1 $2" = "app ls" ]; then cat "$FAKE_STATE/apps.json"; fi
exit 0
`;
const FAKE_DOCKER = `#!/bin/sh
echo "docker $*" >> "$FAKE_STATE/calls"
services() {
  while IFS= read -r svc; do
    [ -n "$svc" ] || continue
    if [ -f "$FAKE_STATE/removed" ]; then
      gone=
      while IFS= read -r stack; do case "$svc" in "$stack"_*) gone=1 ;; esac; done < "$FAKE_STATE/removed"
      [ -z "$gone" ] || continue
    fi
    case "$svc" in "$1"*) echo "$svc" ;; esac
  done < "$FAKE_STATE/services"
}
case "$1 $2" in
  "service ls") if [ "$3" = --filter ]; then services "\${4#name=}"; else services ""; fi ;;
  "stack rm") echo "$3" >> "$FAKE_STATE/removed" ;;
esac
exit 0
`;

function fakeHost(apps: unknown, services: string[]): { env: NodeJS.ProcessEnv; state: string; calls: () => string[] } {
  const state = tempDir('ccci-fake-host-');
  const bin = join(state, 'bin');
  mkdirSync(bin);
  for (const [name, script] of [
    ['abra', FAKE_ABRA],
    ['docker', FAKE_DOCKER],
  ] as const) {
    writeFileSync(join(bin, name), script);
    chmodSync(join(bin, name), 0o755);
  }
  writeFileSync(join(state, 'apps.json'), typeof apps === 'string' ? apps : JSON.stringify(apps));
  writeFileSync(join(state, 'services'), `${services.join('\n')}\n`);
  writeFileSync(join(state, 'calls'), '');
  mkdirSync(join(state, 'abra', 'servers', 'default'), { recursive: true });
  return {
    // No Engine socket: teardown reads through the fake docker, never the real daemon.
    env: {
      PATH: `${bin}:${process.env.PATH}`,
      FAKE_STATE: state,
      ABRA_DIR: join(state, 'abra'),
      CCCI_SERVER: 'default',
      DOCKER_HOST: 'tcp://fake-host.invalid:2375',
    },
    state,
    calls: () => readFileSync(join(state, 'calls'), 'utf8').split('\n').filter(Boolean),
  };
}

describe('cc-ci locks', () => {
  it('--json lists every app lockfile sorted by domain, with the live holder pid', async () => {
    const dir = lockDir();
    const [held, free] = [runApp('a0c001'), runApp('a0c000')];
    const run = await liveRun(held);
    writeFileSync(lockPath(free), '');
    mkdirSync(join(dir, 'cc-ci-app-not-a-file.lock'));

    const { code, stdout, run: cliRun } = await cli(['locks', '--json']);
    expect(code).toBe(0);
    const locks = JSON.parse(stdout) as AppLockInfo[];
    expect(locks).toEqual([
      { domain: free, path: lockPath(free), state: 'free', ageMs: expect.any(Number), holder: null },
      {
        domain: held,
        path: lockPath(held),
        state: 'held',
        ageMs: expect.any(Number),
        holder: { pid: run.pid, command: expect.stringContaining('hold-lock.mjs') },
      },
    ]);
    expect(locks[1]!.ageMs).toBeLessThan(60_000);
    expect(cliRun.output()).toContain('skipping');
  });

  it('prints a table for humans', async () => {
    lockDir();
    const held = runApp('a0c002');
    const run = await liveRun(held);
    const { code, stdout } = await cli(['locks']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^DOMAIN +STATE +AGE +PID +COMMAND$/m);
    expect(stdout).toMatch(new RegExp(`^${held.replaceAll('.', '\\.')} +held +\\d+s +${run.pid} +\\S*node .*hold-lock\\.mjs`, 'm'));
    expect(stdout).toContain('1 lockfile in');
  });

  it('refuses an unknown flag with exit 2', async () => {
    const { code, run } = await cli(['locks', '--all']);
    expect(code).toBe(2);
    expect(run.output()).toMatch(/cc-ci locks: Unknown option '--all'/);
  });
});

describe('cc-ci janitor', () => {
  it('--json: discovers through abra and docker, reaps the orphans, leaves the live run and the warm app', async () => {
    lockDir();
    const [abraOrphan, dockerOrphan, live] = [runApp('a0ab01'), runApp('a0d0c1'), runApp('a011fe')];
    const warm = 'warm-keycloak.ci.commoninternet.net';
    const host = fakeHost(
      { default: { apps: [{ appName: abraOrphan, domain: abraOrphan }, { appName: live }, { appName: warm, domain: warm }], appCount: 3 } },
      [`${stackName(dockerOrphan)}_app`, `${stackName(live)}_app`, `${stackName(warm)}_app`],
    );
    writeFileSync(join(host.state, 'abra', 'servers', 'default', `${abraOrphan}.env`), 'RECIPE=keycloak\n');
    await orphan(abraOrphan);
    await liveRun(live);

    const { code, stdout, run } = await cli(['janitor', '--json'], host.env);
    expect(code, run.output()).toBe(0);
    const report = JSON.parse(stdout) as JanitorReport;
    expect(report).toEqual({ dryRun: false, reaped: [abraOrphan, dockerOrphan], live: [live], longHeld: [], skipped: [], tidied: [] });
    const calls = host.calls();
    expect(calls).toContain('abra app ls --machine');
    expect(calls).toContain(`abra app remove ${abraOrphan} --no-input --force`);
    expect(calls).toContain(`docker stack rm ${stackName(dockerOrphan)}`);
    expect(calls.filter((call) => call.includes(stackName(live)) || call.includes(live))).toEqual([]);
    expect(calls.filter((call) => call.includes('warm'))).toEqual([]);
    expect(probeLock(abraOrphan)).toBe('absent');
    expect(probeLock(dockerOrphan)).toBe('absent');
    expect(probeLock(live)).toBe('held');
  });

  it('--dry-run prints a summary and touches nothing', async () => {
    lockDir();
    const domain = runApp('a0d2d2');
    const host = fakeHost({ default: { apps: [{ appName: domain }] } }, []);
    await orphan(domain);
    const { code, stdout } = await cli(['janitor', '--dry-run'], host.env);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^janitor \(dry run: nothing changed\): 1 to reap, 0 live, 0 skipped, 0 to tidy/);
    expect(stdout).toMatch(new RegExp(`^  would reap +${domain.replaceAll('.', '\\.')}$`, 'm'));
    expect(host.calls().sort()).toEqual([
      'abra app ls --machine',
      'docker network ls --format {{.Name}}',
      'docker secret ls --format {{.Name}}',
      'docker service ls --format {{.Name}}',
      'docker volume ls --format {{.Name}}',
    ]);
    expect(probeLock(domain)).toBe('free');
  });

  it('exits 2 with one clear line on unparseable abra output, and acts on nothing', async () => {
    lockDir();
    const domain = runApp('a0bad0');
    await orphan(domain);
    const host = fakeHost('WARN no servers configured\n', []);
    const { code, stdout, run } = await cli(['janitor'], host.env);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(run.output()).toMatch(/^cc-ci janitor: unparseable `abra app ls --machine` output \(.*\): "WARN no servers configured"$/m);
    expect(probeLock(domain)).toBe('free');
  });

  it('refuses an unknown flag or argument with exit 2, and has --help', async () => {
    expect((await cli(['janitor', '--force'])).code).toBe(2);
    expect((await cli(['janitor', 'now'])).code).toBe(2);
    const help = await cli(['janitor', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: cc-ci janitor [--dry-run] [--json]');
  });
});

describe('discovery parsing', () => {
  it('reads abra app ls --machine output, per server or as a bare list', () => {
    expect(
      parseAbraAppLs(JSON.stringify({ a: { apps: [{ appName: 'x.org', domain: 'x.org' }] }, b: { apps: [{ appName: 'y.org' }] } })),
    ).toEqual(['x.org', 'y.org']);
    expect(parseAbraAppLs(JSON.stringify([{ domain: 'z.org' }]))).toEqual(['z.org']);
    expect(parseAbraAppLs('{}')).toEqual([]);
    expect(parseAbraAppLs('')).toEqual([]);
    expect(() => parseAbraAppLs('{"a": {"apps": "nope"}}')).toThrow(/"apps" is not an array/);
    expect(() => parseAbraAppLs('[{"name": "x"}]')).toThrow(/no appName or domain/);
    expect(() => parseAbraAppLs('"x"')).toThrow(/expected a JSON object/);
  });

  it('maps docker services back to run-app domains only', () => {
    const domain = runApp('a0d0c2');
    expect(
      domainsOfServices([`${stackName(domain)}_app`, `${stackName(domain)}_db`, 'warm-keycloak_ci_commoninternet_net_app', ''].join('\n')),
    ).toEqual([domain]);
  });
});
