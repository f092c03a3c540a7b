// The recipe's CI contract (docs/recipes.md) end to end, on the real swarm behind the real ingress:
// HTTP health through the app's domain, hooks, the operator's dir, tests that pass, skip and fail,
// results.json and junit.xml, and a bad ccci.yml. The recipe is ccci-hooks, the worked example.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { ROOT, startCli, type Helper } from '../support/processes.js';
import { domainOf, envFile, operatorTests, requireSwarm, useSwarmWorld, type World } from '../support/swarm.js';

const ready = requireSwarm();
const newWorld = useSwarmWorld(['ccci-hooks']);
const RUN_MS = 240_000;

interface Check {
  name: string;
  verdict: string;
  reason?: string;
}
interface Stage extends Check {
  health: Check[];
  hooks: Check[];
  tests: Check[];
}

function run(world: World, id: string, env: NodeJS.ProcessEnv = {}): Helper {
  return startCli(['run'], { env: { ...world.env, RECIPE: 'ccci-hooks', CCCI_RUN_ID: id, STAGES: 'install,custom', ...env } });
}

function results(world: World, id: string): { exitCode: number; teardown: string; stages: Stage[] } {
  return JSON.parse(readFileSync(join(world.runs, id, 'results.json'), 'utf8'));
}

function stage(world: World, id: string, name: string): Stage {
  return results(world, id).stages.find((s) => s.name === name)!;
}

async function assertNothingLeft(world: World, domain: string): Promise<void> {
  const stack = domain.replaceAll('.', '_');
  expect((await world.leftovers()).filter((name) => name.startsWith(stack))).toEqual([]);
  expect(existsSync(envFile(world, domain))).toBe(false);
}

const NO_HOOK = { 'install_steps.sh': '#!/bin/sh\necho "operator: no overlay today"\n' };

describe.skipIf(!ready)('the recipe CI contract on a real swarm and ingress', () => {
  it('is green only because install_steps.sh applied the overlay; tests pass and skip with their reasons', {
    timeout: RUN_MS,
  }, async () => {
    const world = newWorld();
    const domain = domainOf(world, 'ccci-hooks');
    const green = run(world, 'green');
    expect(await green.exited, green.output()).toEqual({ code: 0, signal: null });
    const install = stage(world, 'green', 'install');
    expect(install).toMatchObject({ verdict: 'pass', hooks: [{ name: 'install_steps.sh', verdict: 'pass' }] });
    expect(install.health).toMatchObject([{ name: `health https://${domain}/cgi-bin/health`, verdict: 'pass' }]);
    const custom = stage(world, 'green', 'custom');
    expect(custom.verdict).toBe('pass');
    expect(custom.tests.map((t) => [t.name, t.verdict, t.reason])).toEqual([
      ['test_page.sh', 'pass', undefined],
      ['test_smtp.sh', 'skip', 'test_smtp.sh: SMTP relay not configured'],
      ['test_strict.sh', 'pass', undefined],
    ]);
    expect(green.output()).toContain('skip  test_smtp.sh: test_smtp.sh: SMTP relay not configured');
    await assertNothingLeft(world, domain);
  });

  it("upgrades with the hook's overlay in place: both of upgrade's deploys pass their health check", { timeout: RUN_MS }, async () => {
    const world = newWorld();
    const domain = domainOf(world, 'ccci-hooks');
    const green = run(world, 'upgrade', { STAGES: 'install,upgrade' });
    expect(await green.exited, green.output()).toEqual({ code: 0, signal: null });
    const upgrade = stage(world, 'upgrade', 'upgrade');
    expect(upgrade.verdict, upgrade.reason).toBe('pass');
    expect(upgrade.health.map((check) => check.verdict)).toEqual(['pass', 'pass']);
    await assertNothingLeft(world, domain);
  });

  it('without the hook, install fails its health check: the URL and the 503 in results.json, exit 1, nothing left', {
    timeout: RUN_MS,
  }, async () => {
    const world = newWorld();
    const domain = domainOf(world, 'ccci-hooks');
    const ops = operatorTests(world, 'no-hook', {
      'ccci-hooks': { ...NO_HOOK, 'ccci.yml': 'health:\n  path: /cgi-bin/health\n  timeoutSeconds: 8\n' },
    });
    const red = run(world, 'no-hook', ops);
    expect(await red.exited, red.output()).toEqual({ code: 1, signal: null });
    const install = stage(world, 'no-hook', 'install');
    expect(install.verdict).toBe('fail');
    expect(install.reason).toContain(`https://${domain}/cgi-bin/health`);
    expect(install.reason).toContain('last: status 503');
    expect(install.health).toMatchObject([{ verdict: 'fail' }]);
    expect(stage(world, 'no-hook', 'custom')).toMatchObject({ verdict: 'skip', reason: 'install failed' });
    expect(results(world, 'no-hook')).toMatchObject({ exitCode: 1, teardown: 'clean' });
    await assertNothingLeft(world, domain);
  });

  it("takes the operator's test over the recipe's and the operator's ccci.yml over the recipe's; pass, skip and fail land in results.json and junit.xml", {
    timeout: RUN_MS,
  }, async () => {
    const world = newWorld();
    const domain = domainOf(world, 'ccci-hooks');
    const ops = operatorTests(world, 'operator', {
      'ccci-hooks': {
        'ccci.yml': 'health:\n  path: /cgi-bin/health\nenv:\n  STRICT: "yes"\n',
        'test_page.sh': '#!/bin/sh\necho "the operator\'s test_page.sh"\n',
        'test_zenv.sh': '#!/bin/sh\nenv > "$CCCI_ARTIFACTS_DIR/env.txt"\n',
      },
    });
    // An abra that notes whether the run handed it the git token: it must not.
    const shims = join(world.runs, 'token-abra');
    mkdirSync(shims);
    writeFileSync(
      join(shims, 'abra'),
      `#!/bin/sh\n[ -n "$CCCI_GIT_TOKEN" ] && echo "$*" >> '${join(shims, 'saw-token')}'\nexec '${join(ROOT, 'tests', 'fixtures', 'abra', 'abra')}' "$@"\n`,
      { mode: 0o755 },
    );
    const red = run(world, 'operator', { ...ops, CCCI_GIT_TOKEN: 'tok-must-not-leak', PATH: `${shims}:${world.env.PATH}` });
    expect(await red.exited, red.output()).toEqual({ code: 1, signal: null });
    expect(red.output()).toContain("[test_page.sh] the operator's test_page.sh");
    const custom = stage(world, 'operator', 'custom');
    expect(custom.verdict).toBe('fail');
    expect(custom.tests.map((t) => [t.name, t.verdict, t.reason])).toEqual([
      ['test_page.sh', 'pass', undefined],
      ['test_smtp.sh', 'skip', 'test_smtp.sh: SMTP relay not configured'],
      ['test_strict.sh', 'fail', 'exited 1: test_strict.sh: strict mode finds the app lacking a login page'],
      ['test_zenv.sh', 'pass', undefined],
    ]);
    // A secret reaches only the command that needs it: neither abra nor the recipe's tests saw it.
    expect(existsSync(join(shims, 'saw-token'))).toBe(false);
    const testEnv = readFileSync(join(world.runs, 'operator', 'artifacts', 'env.txt'), 'utf8');
    expect(testEnv).not.toContain('tok-must-not-leak');
    expect(testEnv).toContain('STRICT=yes');
    expect(testEnv).toContain(`CCCI_APP_URL=https://${domain}`);
    expect(readFileSync(join(world.runs, 'operator', 'run.log'), 'utf8')).not.toContain('tok-must-not-leak');
    const junit = readFileSync(join(world.runs, 'operator', 'junit.xml'), 'utf8');
    expect(junit).toMatch(
      /<testcase classname="ccci-hooks\.custom" name="test_strict\.sh"[^>]*>\s*<failure message="exited 1: test_strict\.sh: strict mode/,
    );
    expect(junit).toMatch(
      /<testcase classname="ccci-hooks\.custom" name="test_smtp\.sh"[^>]*>\s*<skipped message="test_smtp\.sh: SMTP relay not configured"/,
    );
    expect(junit).toMatch(/<testcase classname="ccci-hooks\.custom" name="test_page\.sh"[^>]*\/>/);
    expect(results(world, 'operator')).toMatchObject({ exitCode: 1, teardown: 'clean' });
    await assertNothingLeft(world, domain);
  });

  it('a failing setup_custom_tests.sh fails the custom stage, and the run still tears down', { timeout: RUN_MS }, async () => {
    const world = newWorld();
    const domain = domainOf(world, 'ccci-hooks');
    const ops = operatorTests(world, 'bad-setup', {
      'ccci-hooks': { 'setup_custom_tests.sh': '#!/bin/sh\necho "cannot reach the test IdP" >&2\nexit 3\n' },
    });
    const red = run(world, 'bad-setup', ops);
    expect(await red.exited, red.output()).toEqual({ code: 1, signal: null });
    expect(stage(world, 'bad-setup', 'custom')).toMatchObject({
      verdict: 'fail',
      reason: 'setup_custom_tests.sh failed: exited 3: cannot reach the test IdP',
      hooks: [{ name: 'setup_custom_tests.sh', verdict: 'fail' }],
      tests: [],
    });
    expect(results(world, 'bad-setup')).toMatchObject({ exitCode: 1, teardown: 'clean' });
    await assertNothingLeft(world, domain);
  });

  it('a malformed ccci.yml exits 2 naming the file and the key, and leaves nothing', { timeout: RUN_MS }, async () => {
    const world = newWorld();
    const domain = domainOf(world, 'ccci-hooks');
    const ops = operatorTests(world, 'bad-yml', { 'ccci-hooks': { 'ccci.yml': 'health:\n  timeoutSeconds: 5m\n' } });
    const bad = run(world, 'bad-yml', ops);
    expect(await bad.exited, bad.output()).toEqual({ code: 2, signal: null });
    expect(bad.output()).toMatch(/cc-ci run: .*ccci\.yml.*health\.timeoutSeconds/);
    expect(results(world, 'bad-yml')).toMatchObject({ exitCode: 2 });
    await assertNothingLeft(world, domain);
  });

  it('SIGTERM during a health wait tears down at once and exits 143, leaving nothing', { timeout: RUN_MS }, async () => {
    const world = newWorld();
    const domain = domainOf(world, 'ccci-hooks');
    const ops = operatorTests(world, 'term', {
      'ccci-hooks': { ...NO_HOOK, 'ccci.yml': 'health:\n  path: /cgi-bin/health\n  timeoutSeconds: 600\n' },
    });
    const waiting = run(world, 'term', ops);
    await waiting.waitFor('== health: waiting for', 120_000);
    const signalled = Date.now();
    waiting.child.kill('SIGTERM');
    expect(await waiting.exited, waiting.output()).toEqual({ code: 143, signal: null });
    expect(Date.now() - signalled).toBeLessThan(60_000);
    expect(results(world, 'term')).toMatchObject({ exitCode: 143, teardown: 'clean' });
    await assertNothingLeft(world, domain);
  });
});
