// The quick lane's rollback under stress (docs/recipes.md#the-quick-lane), on the real swarm: a
// warm app that does not opt in to backups has its volumes copied and restored; a rollback that
// fails keeps the record, exits 1, and every later holder refuses the app until one succeeds; a
// cancel mid-lane rolls back before the run exits.
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { startCli, type Helper } from '../support/processes.js';
import { appContainer, envFile, operatorTests, requireSwarm, useSwarmWorld, type World } from '../support/swarm.js';
import { assertWarmAsItWas, MARKER, warmApp, warmRecordPath } from '../support/warm.js';

const ready = requireSwarm();
const newWorld = useSwarmWorld(['ccci-demo']);
const RUN_MS = 300_000;
const LATEST = '0.2.0+1.1';
/** A custom test that overwrites the warm app's data: only a restore brings it back. */
const SCRIBBLE = `#!/bin/sh\nset -e\nc=$(docker ps -q --filter "label=com.docker.swarm.service.name=\${STACK_NAME}_app" --filter status=running | head -n 1)\ndocker exec "$c" sh -c 'echo pr-data > ${MARKER}'\n`;

interface Results {
  exitCode: number;
  warm?: { snapshot: { kind: string; dir?: string } | null; rollback: { verdict: string; reason?: string } };
}

function quick(world: World, id: string, warm: string, env: NodeJS.ProcessEnv = {}): Helper {
  return startCli(['run', '--quick'], { env: { ...world.env, RECIPE: 'ccci-demo', CCCI_RUN_ID: id, CCCI_WARM_APPS: warm, ...env } });
}

function results(world: World, id: string): Results {
  return JSON.parse(readFileSync(join(world.runs, id, 'results.json'), 'utf8'));
}

describe.skipIf(!ready)("the quick lane's rollback on a real swarm", () => {
  it('a warm app that does not opt in to backups has each volume copied before the upgrade and restored after', {
    timeout: RUN_MS,
  }, async () => {
    const world = newWorld();
    const warm = await warmApp(world, LATEST, { DEMO_BACKUP: 'false' });
    const ops = operatorTests(world, 'volumes', { 'ccci-demo': { 'test_scribble.sh': SCRIBBLE } });
    const green = quick(world, 'volumes', warm, ops);
    expect(await green.exited, green.output()).toEqual({ code: 0, signal: null });
    const outcome = results(world, 'volumes');
    expect(outcome.warm).toMatchObject({ snapshot: { kind: 'volumes' }, rollback: { verdict: 'pass' } });
    expect(green.output()).not.toContain('abra app backup create');
    expect(existsSync(outcome.warm!.snapshot!.dir!)).toBe(false); // the copies go with the record
    await assertWarmAsItWas(world, warm, LATEST, green.output());
  });

  it('a rollback that fails keeps the record and exits 1; later holders refuse the app until a rollback succeeds', {
    timeout: RUN_MS,
  }, async () => {
    const world = newWorld();
    const warm = await warmApp(world, LATEST);
    const backups = join(world.home, '.abra', 'backups', warm);
    const aside = join(world.home, 'backups-aside');
    // The snapshot is taken, then lost (as a full disk or a pruned backup store would lose it).
    const lose = `#!/bin/sh\nmv "${backups}" "${aside}"\n`;
    const ops = operatorTests(world, 'lost', { 'ccci-demo': { 'test_lose.sh': lose, 'test_scribble.sh': SCRIBBLE } });
    const red = quick(world, 'lost', warm, ops);
    expect(await red.exited, red.output()).toEqual({ code: 1, signal: null });
    const refusal = `the rollback of the warm app ${warm} failed (`;
    expect(results(world, 'lost').warm!.rollback).toMatchObject({ verdict: 'fail', reason: expect.stringContaining(refusal) });
    expect(red.output()).toContain(`its recovery record ${warmRecordPath(world, warm)} stays`);
    expect(existsSync(warmRecordPath(world, warm))).toBe(true);

    // The next quick run retries the rollback first, fails again, and refuses: one line, exit 1.
    const refused = quick(world, 'refused', warm);
    expect(await refused.exited, refused.output()).toEqual({ code: 1, signal: null });
    expect(refused.output()).toMatch(
      new RegExp(`cc-ci run: ${refusal.replace(/[.()]/g, '\\$&')}.*retry: cc-ci warm-reconcile --apps ${warm.replace(/\./g, '\\.')}\\)`),
    );
    expect(refused.output()).not.toContain('== stage upgrade ==');
    // warm-reconcile refuses too, and says so in its exit code.
    const stillLost = startCli(['warm-reconcile', '--apps', warm], { env: world.env });
    expect(await stillLost.exited, stillLost.output()).toEqual({ code: 1, signal: null });

    // The operator brings the snapshot back and retries: the rollback completes, the record goes.
    renameSync(aside, backups);
    const retry = startCli(['warm-reconcile', '--apps', warm, '--json'], { env: world.env });
    expect(await retry.exited, retry.output()).toEqual({ code: 0, signal: null });
    expect(retry.output()).toContain(`"rolledBack": [\n    "${warm}"\n  ]`);
    await assertWarmAsItWas(world, warm, LATEST, retry.output());
  });

  it('SIGTERM mid-lane rolls the warm app back before the run exits 143', { timeout: RUN_MS }, async () => {
    const world = newWorld();
    const warm = await warmApp(world, LATEST);
    const ops = operatorTests(world, 'term', {
      // a_scribble.sh runs before the demo's pause.sh: the data is overwritten when the cancel comes.
      'ccci-demo': { 'a_scribble.sh': SCRIBBLE, 'ccci.yml': 'env:\n  CCCI_TEST_CUSTOM_SLEEP: "120"\n' },
    });
    const run = quick(world, 'term', warm, ops);
    await run.waitFor('== custom: pause.sh ==', 180_000);
    run.child.kill('SIGTERM');
    expect(await run.exited, run.output()).toEqual({ code: 143, signal: null });
    expect(results(world, 'term')).toMatchObject({ exitCode: 143, warm: { rollback: { verdict: 'pass' } } });
    expect(readFileSync(envFile(world, warm), 'utf8')).not.toContain('CCCI_TEST_CUSTOM_SLEEP');
    expect(await appContainer(warm)).not.toBeNull();
    await assertWarmAsItWas(world, warm, LATEST, run.output());
  });
});
