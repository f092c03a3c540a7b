// The quick lane (docs/recipes.md#the-quick-lane) end to end, on the real swarm behind the real
// ingress: the recipe's warm app upgraded in place to the code under test, tested, and always
// rolled back to its version with its data; a run killed mid-upgrade rolled back by the next
// holder of the warm app's lock; two quick runs serialised while a cold one runs beside them.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

import { startCli, type Helper } from '../support/processes.js';
import { domainOf, operatorTests, requireSwarm, useSwarmWorld, type World } from '../support/swarm.js';
import { assertWarmAsItWas, forgeHead, warmApp, warmRecordPath } from '../support/warm.js';

const ready = requireSwarm();
const newWorld = useSwarmWorld(['ccci-demo']);
const RUN_MS = 300_000;
const OLD = '0.1.0+1.0';

interface Results {
  exitCode: number;
  lane: string;
  laneReason?: string;
  warm?: {
    domain: string;
    versionBefore: string;
    versionAfter: string | null;
    snapshot: { kind: string } | null;
    rollback: { verdict: string };
  };
  stages: { name: string; verdict: string; reason?: string }[];
}

function quick(world: World, id: string, warm: string, env: NodeJS.ProcessEnv = {}): Helper {
  return startCli(['run', '--quick'], { env: { ...world.env, RECIPE: 'ccci-demo', CCCI_RUN_ID: id, CCCI_WARM_APPS: warm, ...env } });
}

function results(world: World, id: string): Results {
  return JSON.parse(readFileSync(join(world.runs, id, 'results.json'), 'utf8'));
}

/** A forge with the demo recipe's PR head `broken`: its app exits at once, so it never converges. */
function brokenHead(world: World): NodeJS.ProcessEnv {
  return forgeHead(world, 'broken', 's/httpd -f -p 80 -h \\/var\\/www\\/html/false/', 'a PR head that never converges');
}

describe.skipIf(!ready)('the quick lane on a real swarm and ingress', () => {
  it('upgrades the warm app in place, tests it, and rolls it back to its version with its data', { timeout: RUN_MS }, async () => {
    const world = newWorld();
    const warm = await warmApp(world, OLD);
    const green = quick(world, 'green', warm);
    expect(await green.exited, green.output()).toEqual({ code: 0, signal: null });
    // The tests ran against the code under test, on the warm app.
    expect(green.output()).toContain(`http.sh: ${warm.replaceAll('.', '_')}_app answered: ccci-demo 0.2.0+1.1`);
    expect(results(world, 'green')).toMatchObject({
      exitCode: 0,
      lane: 'quick',
      warm: { domain: warm, versionBefore: OLD, versionAfter: OLD, snapshot: { kind: 'backup' }, rollback: { verdict: 'pass' } },
      stages: [
        { name: 'upgrade', verdict: 'pass' },
        { name: 'custom', verdict: 'pass' },
      ],
    });
    await assertWarmAsItWas(world, warm, OLD);
    // No app of the run's own.
    expect((await world.leftovers()).filter((name) => name.startsWith(domainOf(world, 'ccci-demo').replaceAll('.', '_')))).toEqual([]);
  });

  it('a PR head that cannot converge fails upgrade; the rollback still brings the warm app back; exit 1', { timeout: RUN_MS }, async () => {
    const world = newWorld();
    const warm = await warmApp(world, OLD);
    const ops = operatorTests(world, 'broken', { 'ccci-demo': { 'ccci.yml': 'env:\n  TIMEOUT: "10"\n' } });
    const red = quick(world, 'broken', warm, { ...brokenHead(world), ...ops });
    expect(await red.exited, red.output()).toEqual({ code: 1, signal: null });
    const outcome = results(world, 'broken');
    expect(outcome).toMatchObject({ lane: 'quick', warm: { versionAfter: OLD, rollback: { verdict: 'pass' } } });
    expect(outcome.stages).toMatchObject([
      { name: 'upgrade', verdict: 'fail' },
      { name: 'custom', verdict: 'skip', reason: 'upgrade failed' },
    ]);
    await assertWarmAsItWas(world, warm, OLD);
  });

  it('SIGKILL mid-upgrade: warm-reconcile, and separately the next quick run, complete the rollback first', {
    timeout: RUN_MS,
  }, async () => {
    const world = newWorld();
    const warm = await warmApp(world, OLD);
    const killMidUpgrade = async (id: string): Promise<void> => {
      const run = quick(world, id, warm);
      await run.waitFor(`$ abra app deploy ${warm} --no-input --chaos --force`, 180_000);
      await new Promise((r) => setTimeout(r, 2_000));
      process.kill(-run.pid, 'SIGKILL');
      await run.exited;
      expect(existsSync(warmRecordPath(world, warm))).toBe(true);
    };

    await killMidUpgrade('killed-1');
    const reconcile = startCli(['warm-reconcile', '--apps', warm, '--json'], { env: { ...world.env } });
    expect(await reconcile.exited, reconcile.output()).toEqual({ code: 0, signal: null });
    const report = JSON.parse(reconcile.lines.slice(reconcile.lines.indexOf('{'), reconcile.lines.lastIndexOf('}') + 1).join('\n'));
    expect(report.rolledBack).toEqual([warm]);
    // Then it reconciles as usual: the rolled-back app is behind the latest published version.
    expect(report.upgraded).toEqual([{ domain: warm, from: OLD, to: '0.2.0+1.1' }]);

    // Put it back at the old version for the second half, as an operator pinning it would.
    await execa('abra', ['app', 'deploy', warm, OLD, '--force', '--no-input'], { env: { ...process.env, ...world.env } });
    await killMidUpgrade('killed-2');
    const next = quick(world, 'next', warm);
    expect(await next.exited, next.output()).toEqual({ code: 0, signal: null });
    const log = readFileSync(join(world.runs, 'next', 'run.log'), 'utf8');
    expect(log).toContain(`== warm app ${warm}: run killed-2 (pid `);
    expect(log.indexOf('completing its rollback first')).toBeLessThan(log.indexOf('== stage upgrade =='));
    await assertWarmAsItWas(world, warm, OLD);
  });

  it('two quick runs of one recipe serialise on the warm app; a cold run of it overlaps them, all green', { timeout: RUN_MS }, async () => {
    const world = newWorld();
    const warm = await warmApp(world, OLD);
    const first = quick(world, 'q1', warm, { PR: '1' });
    await first.waitFor(`== warm app lock held: ${warm}`, 120_000);
    const second = quick(world, 'q2', warm, { PR: '2' });
    const cold = startCli(['run'], { env: { ...world.env, RECIPE: 'ccci-demo', CCCI_RUN_ID: 'cold', PR: '3', STAGES: 'install,custom' } });
    await second.waitFor(`another run of ${warm} is in flight — waiting`, 60_000);
    await cold.waitFor('== stage install ==', 120_000);
    const coldInstalled = Date.now();
    for (const run of [first, second, cold]) expect(await run.exited, run.output()).toEqual({ code: 0, signal: null });
    // The cold run has an app of its own: it was installed while the quick runs still held the warm app.
    const secondEnded = Date.parse(JSON.parse(readFileSync(join(world.runs, 'q2', 'results.json'), 'utf8')).finishedAt);
    expect(coldInstalled).toBeLessThan(secondEnded);
    expect(cold.output()).not.toContain('another run of');
    expect(results(world, 'cold').lane).toBe('cold');
    await assertWarmAsItWas(world, warm, OLD);
  });

  it('with no warm app of the recipe, takes the cold lane and says why', { timeout: RUN_MS }, async () => {
    const world = newWorld();
    const run = startCli(['run'], {
      env: { ...world.env, RECIPE: 'ccci-demo', CCCI_RUN_ID: 'nowarm', CCCI_QUICK: '1', STAGES: 'install' },
    });
    expect(await run.exited, run.output()).toEqual({ code: 0, signal: null });
    expect(run.output()).toContain('== quick lane: CCCI_WARM_APPS names no warm app — this run takes the cold lane ==');
    expect(results(world, 'nowarm')).toMatchObject({
      lane: 'cold',
      laneReason: 'CCCI_WARM_APPS names no warm app',
      stages: [{ name: 'install', verdict: 'pass' }],
    });
  });
});
