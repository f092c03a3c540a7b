// A recipe's dependencies (docs/recipes.md#dependencies) end to end, on the real swarm behind the
// real ingress: deployed when the custom stage begins, described in CCCI_DEPS_FILE, reached by a
// test over verified TLS, reported when not ready, torn down after the app, reaped by the next
// run's janitor when their run died, never touched while it lives. The recipe under test is
// `ccci-app` (the demo under another name); its operator dir adds tests/fixtures/deps/.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

import { ROOT, startCli, type Helper } from '../support/processes.js';
import { depDomainOf, domainOf, envFile, names, operatorTests, requireSwarm, useSwarmWorld, type World } from '../support/swarm.js';

const ready = requireSwarm();
const newWorld = useSwarmWorld(['ccci-app', 'ccci-demo', 'ccci-other', 'ccci-broken']);
const RUN_MS = 300_000;
const TEST_DEP = readFileSync(join(ROOT, 'tests', 'fixtures', 'deps', 'test_dep.sh'), 'utf8');
/** Keeps what CCCI_DEPS_FILE said when the tests ran (the state dir goes with the run). */
const KEEP_DEPS_FILE = '#!/bin/sh\ncp "$CCCI_DEPS_FILE" "$CCCI_ARTIFACTS_DIR/deps.json"\n';
/** Holds the custom stage until the file $RELEASE exists. */
const WAIT_FOR_RELEASE = '#!/bin/sh\nwhile [ ! -e "$RELEASE" ]; do sleep 0.2; done\n';

interface Dep {
  recipe: string;
  domain: string;
  version: string | null;
  ready: boolean;
  error?: string;
  deployMs: number;
  teardown: string;
}
interface Stage {
  name: string;
  verdict: string;
  reason?: string;
  health: { name: string; verdict: string }[];
  tests: { name: string; verdict: string; reason?: string }[];
}
interface Results {
  exitCode: number;
  teardown: string;
  stages: Stage[];
  deps: Dep[];
}

/** ccci.yml declaring `deps` (recipe or recipe@version), with `env`. */
function ccciYml(deps: string[], env: Record<string, string> = {}): string {
  const entries = deps.map((dep) => {
    const [recipe, version] = dep.split('@');
    return `  - recipe: ${recipe}\n${version ? `    version: "${version}"\n` : ''}`;
  });
  const vars = Object.entries(env).map(([key, value]) => `  ${key}: "${value}"\n`);
  return `deps:\n${entries.join('')}${vars.length ? `env:\n${vars.join('')}` : ''}`;
}

function run(world: World, id: string, files: Record<string, string>, env: NodeJS.ProcessEnv = {}): Helper {
  const ops = operatorTests(world, id, { 'ccci-app': { 'test_dep.sh': TEST_DEP, 'test_keep.sh': KEEP_DEPS_FILE, ...files } });
  return startCli(['run'], { env: { ...world.env, RECIPE: 'ccci-app', CCCI_RUN_ID: id, STAGES: 'custom', ...ops, ...env } });
}

function results(world: World, id: string): Results {
  return JSON.parse(readFileSync(join(world.runs, id, 'results.json'), 'utf8'));
}

function stage(world: World, id: string, name: string): Stage {
  return results(world, id).stages.find((s) => s.name === name)!;
}

async function services(domain: string): Promise<string[]> {
  const stack = domain.replaceAll('.', '_');
  return (await names(['service', 'ls', '--format', '{{.Name}}'])).filter((name) => name.startsWith(`${stack}_`));
}

async function assertNothingLeft(world: World, ...domains: string[]): Promise<void> {
  const left = await world.leftovers();
  for (const domain of domains) {
    const stack = domain.replaceAll('.', '_');
    expect(left.filter((name) => name.startsWith(stack))).toEqual([]);
    expect(existsSync(envFile(world, domain))).toBe(false);
  }
}

describe.skipIf(!ready)('recipe dependencies on a real swarm and ingress', () => {
  it('deploys the demo recipe as a dependency: a test reads CCCI_DEPS_FILE and reaches it through the ingress over verified TLS; everything goes after', {
    timeout: RUN_MS,
  }, async () => {
    const world = newWorld();
    const app = domainOf(world, 'ccci-app');
    const dep = depDomainOf(world, app, 'ccci-demo');
    const green = run(world, 'green', { 'ccci.yml': ccciYml(['ccci-demo'], { DEP: 'ccci-demo' }) });
    expect(await green.exited, green.output()).toEqual({ code: 0, signal: null });
    expect(green.output()).toContain(`[test_dep.sh] test_dep.sh: ccci-demo answered at https://${dep}/: ccci-demo 0.2.0+1.1`);
    const deps = JSON.parse(readFileSync(join(world.runs, 'green', 'artifacts', 'deps.json'), 'utf8'));
    expect(deps).toEqual({
      'ccci-demo': {
        domain: dep,
        stack: dep.replaceAll('.', '_'),
        url: `https://${dep}`,
        envFile: expect.stringMatching(new RegExp(`/servers/default/${dep.replaceAll('.', '\\.')}\\.env$`)),
        version: '0.2.0+1.1',
        ready: true,
      },
    });
    const custom = stage(world, 'green', 'custom');
    expect(custom.verdict, custom.reason).toBe('pass');
    expect(custom.health).toMatchObject([{ name: `health https://${dep}/`, verdict: 'pass' }]);
    expect(custom.tests.find((t) => t.name === 'test_dep.sh')).toMatchObject({ verdict: 'pass' });
    expect(results(world, 'green')).toMatchObject({
      exitCode: 0,
      teardown: 'clean',
      deps: [{ recipe: 'ccci-demo', domain: dep, version: '0.2.0+1.1', ready: true, teardown: 'clean' }],
    });
    // The app first, then the dependency; the summary lists it.
    const log = readFileSync(join(world.runs, 'green', 'run.log'), 'utf8');
    expect(log.indexOf(`== teardown: ${app} ==`)).toBeLessThan(log.indexOf(`== teardown: ${dep} ==`));
    expect(log).toMatch(
      new RegExp(`dep {3}ccci-demo 0\\.2\\.0\\+1\\.1 at ${dep.replaceAll('.', '\\.')} +[0-9.]+ s {2}ready; teardown: clean`),
    );
    await assertNothingLeft(world, app, dep);
  });

  it('a dependency that cannot converge: ready false, the test skips and reports, custom fails naming it, install passes, exit 1, nothing left', {
    timeout: RUN_MS,
  }, async () => {
    const world = newWorld();
    const app = domainOf(world, 'ccci-app');
    const dep = depDomainOf(world, app, 'ccci-broken');
    const red = run(world, 'broken', { 'ccci.yml': ccciYml(['ccci-broken'], { DEP: 'ccci-broken' }) }, { STAGES: 'install,custom' });
    expect(await red.exited, red.output()).toEqual({ code: 1, signal: null });
    const deps = JSON.parse(readFileSync(join(world.runs, 'broken', 'artifacts', 'deps.json'), 'utf8'));
    expect(deps['ccci-broken']).toMatchObject({ domain: dep, ready: false, error: expect.stringContaining('did not converge within 8s') });
    expect(stage(world, 'broken', 'install').verdict).toBe('pass');
    const custom = stage(world, 'broken', 'custom');
    expect(custom.verdict).toBe('fail');
    expect(custom.reason).toMatch(
      /^1 test skipped for a dependency that is not ready; not ready: ccci-broken \(.*\): .*did not converge within 8s/,
    );
    expect(custom.tests.find((t) => t.name === 'test_dep.sh')).toMatchObject({
      verdict: 'skip',
      reason: 'test_dep.sh: ccci-broken is not ready',
    });
    expect(results(world, 'broken')).toMatchObject({
      exitCode: 1,
      teardown: 'clean',
      deps: [{ recipe: 'ccci-broken', domain: dep, ready: false, teardown: 'clean' }],
    });
    expect(red.output()).toContain(`!! dependency ccci-broken (${dep}) is not ready:`);
    await assertNothingLeft(world, app, dep);
  });

  // Two runs of one recipe at once, too: each deploys its own dependency (one pinned to the older
  // version), and neither waits for the other.
  it("SIGKILL of a run with its dependency up: the next run's janitor reaps the app and the dependency; a live run's are untouched", {
    timeout: RUN_MS,
  }, async () => {
    const world = newWorld();
    const release = join(world.runs, 'release');
    const held = (dep: string) => ({ 'ccci.yml': ccciYml([dep], { RELEASE: release }), 'test_wait.sh': WAIT_FOR_RELEASE });
    const [deadApp, liveApp] = [domainOf(world, 'ccci-app', '1'), domainOf(world, 'ccci-app', '2')];
    const [deadDep, liveDep] = [depDomainOf(world, deadApp, 'ccci-demo'), depDomainOf(world, liveApp, 'ccci-demo')];
    expect(deadDep).not.toBe(liveDep);
    const dead = run(world, 'dead', held('ccci-demo'), { PR: '1' });
    const live = run(world, 'live', held('ccci-demo@0.1.0+1.0'), { PR: '2' });
    await Promise.all([dead.waitFor('== custom: test_wait.sh', 180_000), live.waitFor('== custom: test_wait.sh', 180_000)]);
    expect(dead.output()).toContain(`ccci-demo answered at https://${deadDep}/: ccci-demo 0.2.0+1.1`);
    expect(live.output()).toContain(`ccci-demo answered at https://${liveDep}/: ccci-demo 0.1.0+1.0`);
    for (const helper of [dead, live]) expect(helper.output()).not.toContain('another run of');
    process.kill(-dead.pid, 'SIGKILL');
    await dead.exited;
    expect(await services(deadDep)).not.toEqual([]);

    const next = startCli(['run'], { env: { ...world.env, RECIPE: 'ccci-demo', CCCI_RUN_ID: 'next', STAGES: 'install' } });
    expect(await next.exited, next.output()).toEqual({ code: 0, signal: null });
    const sweep = next.lines.find((line) => line.includes('== janitor: reaped'))!;
    expect(sweep).toContain(`reaped [${[deadApp, deadDep].sort().join(', ')}]`);
    expect(sweep).toContain(`live [${[liveApp, liveDep].sort().join(', ')}]`);
    await assertNothingLeft(world, deadApp, deadDep);
    expect(await services(liveApp)).not.toEqual([]);
    expect(await services(liveDep)).not.toEqual([]);

    writeFileSync(release, '');
    expect(await live.exited, live.output()).toEqual({ code: 0, signal: null });
    expect(results(world, 'live')).toMatchObject({
      exitCode: 0,
      teardown: 'clean',
      deps: [{ domain: liveDep, version: '0.1.0+1.0', ready: true, teardown: 'clean' }],
    });
    await assertNothingLeft(world, liveApp, liveDep);
  });

  it('a dependency whose teardown leaves something is reported (exit 1), and the next one is still torn down', {
    timeout: RUN_MS,
  }, async () => {
    const world = newWorld();
    const app = domainOf(world, 'ccci-app');
    const [demo, other] = [depDomainOf(world, app, 'ccci-demo'), depDomainOf(world, app, 'ccci-other')];
    // A container outside any stack holds ccci-other's volume: `docker volume rm` must fail on it.
    const pin = `pin-${world.base.replaceAll('.', '_')}`;
    const pinTest = `#!/bin/sh
set -e
docker run -d --name "${pin}" -v "$(jq -r '.["ccci-other"].stack' "$CCCI_DEPS_FILE")_data:/pinned" ccci/busybox:latest sleep 600
`;
    try {
      const red = run(world, 'residue', { 'ccci.yml': ccciYml(['ccci-demo', 'ccci-other']), 'test_pin.sh': pinTest });
      expect(await red.exited, red.output()).toEqual({ code: 1, signal: null });
      expect(results(world, 'residue')).toMatchObject({
        exitCode: 1,
        teardown: 'clean',
        deps: [
          { recipe: 'ccci-demo', ready: true, teardown: 'clean' },
          { recipe: 'ccci-other', ready: true, teardown: 'residual' },
        ],
      });
      expect(stage(world, 'residue', 'custom').verdict).toBe('pass');
      const log = readFileSync(join(world.runs, 'residue', 'run.log'), 'utf8');
      expect(log).toContain(`!! teardown of ${other} left: {"services":[],"volumes":["${other.replaceAll('.', '_')}_data"]`);
      // Reverse declaration order, and past the residue: ccci-other first, then ccci-demo, verified.
      expect(log.indexOf(`== teardown: ${other} ==`)).toBeLessThan(log.indexOf(`== teardown: ${demo} — nothing left ==`));
      expect(red.output()).toContain(`teardown left something of the dependencies ${other} behind`);
      await assertNothingLeft(world, app, demo);
    } finally {
      await execa('docker', ['rm', '-f', pin], { reject: false });
    }
  });

  it('SIGTERM while a dependency deploys: the app and the dependency are torn down, exit 143, nothing left', {
    timeout: RUN_MS,
  }, async () => {
    const world = newWorld();
    const app = domainOf(world, 'ccci-app');
    const dep = depDomainOf(world, app, 'ccci-demo');
    const cancelled = run(world, 'term', { 'ccci.yml': ccciYml(['ccci-demo']) });
    await cancelled.waitFor(`$ abra app deploy ${dep}`, 180_000);
    cancelled.child.kill('SIGTERM');
    expect(await cancelled.exited, cancelled.output()).toEqual({ code: 143, signal: null });
    expect(results(world, 'term')).toMatchObject({
      exitCode: 143,
      teardown: 'clean',
      deps: [{ domain: dep, ready: false, teardown: 'clean' }],
    });
    const log = readFileSync(join(world.runs, 'term', 'run.log'), 'utf8');
    expect(log.indexOf(`== teardown: ${app} ==`)).toBeLessThan(log.indexOf(`== teardown: ${dep} — nothing left ==`));
    await assertNothingLeft(world, app, dep);
  });

  it('a recipe depending on itself, or on more than CCCI_MAX_DEPS, is bad input: exit 2 naming ccci.yml and the entry, nothing deployed', {
    timeout: RUN_MS,
  }, async () => {
    const world = newWorld();
    const self = run(world, 'self', { 'ccci.yml': ccciYml(['ccci-demo', 'ccci-app']) });
    expect(await self.exited, self.output()).toEqual({ code: 2, signal: null });
    expect(self.output()).toMatch(/cc-ci run: ccci\.yml: deps\[1\]\.recipe "ccci-app" is the recipe under test/);
    const many = run(world, 'many', { 'ccci.yml': ccciYml(['ccci-demo', 'ccci-broken']) }, { CCCI_MAX_DEPS: '1' });
    expect(await many.exited, many.output()).toEqual({ code: 2, signal: null });
    expect(many.output()).toMatch(/cc-ci run: ccci\.yml: deps\[1\] \(recipe "ccci-broken"\) is one more than CCCI_MAX_DEPS allows \(1\)/);
    expect(await world.leftovers()).toEqual([]);
  });
});
