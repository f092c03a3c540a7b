// Quick-lane chaos (docs/recipes.md#the-quick-lane): `cc-ci run --quick` upgrading the recipe's
// warm app in place to a PR head, SIGKILLed at a random instant of a chosen phase, over and over.
// After each kill, and the recovery it calls for, the warm app must be back at its version,
// healthy, with its data, its lock free, and nothing of any cold app of this world left.
//
// Phases (where the kill landed is read afterwards from the run's timestamped log):
//   before-record  from the start until the recovery record is written (just after the warm
//                  app's lock is held; the record is on disk by `== stage upgrade ==`)
//   mid-upgrade    the upgrade stage: the snapshot, then the PR head deployed over the warm app
//                  (aimed from `$ abra app deploy <warm> --no-input --chaos --force`)
//   mid-tests      the custom stage, whose operator test overwrites the warm app's data
//   mid-rollback   from `== rollback: <warm> back to` until the rollback says it is complete
// The phase an iteration aims at comes from a seeded shuffle; the instant is a random part of the
// phase's duration as measured on earlier iterations.
//
// A kill SIGKILLs the run's whole process group (the record stays): the next holder of the warm
// app's lock completes the rollback, alternately `cc-ci warm-reconcile` and the next quick run.
// One kill per phase (a quarter of them, if that is more; so half at the default 8) hits only the
// `cc-ci step` wrapper instead: the run's parent-death signal makes it roll back by itself, and
// that is checked before anything else looks.
//
// The warm app is at the recipe's latest version, so warm-reconcile's upgrade after a recovery
// is a no-op and the app must end each iteration exactly as it began.
//
// Seed: CCCI_CHAOS_SEED (printed); CCCI_CHAOS_QUICK_ITERATIONS overrides the iteration count (8).
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

import { CLI, startCli, type Helper } from '../support/processes.js';
import { childOf, countByPhase, expectEveryPhaseHit, killGroups, killRun, lockState, runLog, sleep, until } from '../support/chaos.js';
import { Random, seedFrom } from '../support/random.js';
import { appContainer, envFile, operatorTests, requireSwarm, useSwarmWorld, type World } from '../support/swarm.js';
import { assertWarmAsItWas, forgeHead, MARKER, warmApp, warmRecordPath } from '../support/warm.js';

const SEED = seedFrom('CCCI_CHAOS_SEED', 20_261_203);
const ITERATIONS = Number(process.env.CCCI_CHAOS_QUICK_ITERATIONS || 8);
/** The demo recipe's latest published version: the warm app's, before and after every iteration. */
const VERSION = '0.2.0+1.1';
/** What the PR head's label and page say instead. */
const PR_VERSION = '0.3.0-pr';
const PHASES = ['before-record', 'mid-upgrade', 'mid-tests', 'mid-rollback'] as const;
type Phase = (typeof PHASES)[number];
/** A kill after the rollback completed, as the run was exiting, is in no phase. */
type Landed = Phase | 'after-rollback';
type Recovery = 'warm-reconcile' | 'next quick run' | 'by itself';

const ready = requireSwarm();
const newWorld = useSwarmWorld(['ccci-demo']);

// ---------------------------------------------------------------------------------------------
// Observing a run.

/** The line each phase is aimed from (null: the run's start). */
function aimMarkers(warm: string): Record<Phase, string | null> {
  return {
    'before-record': null,
    'mid-upgrade': `$ abra app deploy ${warm} --no-input --chaos --force`,
    'mid-tests': '== stage custom ==',
    'mid-rollback': `== rollback: ${warm} back to `,
  };
}

interface Starts {
  /** When each phase began (null: not reached); before-record at the run's spawn. */
  landing: Record<Phase, number | null>;
  /** When each phase's aim marker was logged. */
  aim: Record<Phase, number | null>;
  /** The rollback complete, or the run's last line. */
  end: number | null;
}

function phaseStarts(world: World, id: string, warm: string, spawned: number): Starts {
  const log = runLog(world, id);
  const first = (test: (line: string) => boolean): number | null => log.find((entry) => test(entry.line))?.at ?? null;
  const markers = aimMarkers(warm);
  const aim = Object.fromEntries(
    PHASES.map((phase) => [phase, markers[phase] === null ? spawned : first((l) => l.trimStart().startsWith(markers[phase]!))]),
  ) as Record<Phase, number | null>;
  return {
    landing: { ...aim, 'mid-upgrade': first((l) => l === '== stage upgrade ==') },
    aim,
    end: first((l) => l.startsWith(`== rollback: ${warm} is at `) || / run \S+: exit \d+/.test(l)),
  };
}

function landedIn(starts: Starts, at: number): Landed {
  if (starts.end !== null && starts.end <= at) return 'after-rollback';
  let landed: Phase = 'before-record';
  for (const phase of PHASES) if (starts.landing[phase] !== null && starts.landing[phase]! <= at) landed = phase;
  return landed;
}

/** The JSON document a `--json` command printed last (its log lines come first, on stderr). */
function jsonOf(helper: Helper): unknown {
  const { lines } = helper;
  return JSON.parse(lines.slice(lines.lastIndexOf('{'), lines.lastIndexOf('}') + 1).join('\n'));
}

// ---------------------------------------------------------------------------------------------

interface Kill {
  iteration: number;
  aimed: Phase;
  landed: Landed;
  how: 'group' | 'step-wrapper';
  recovery: Recovery;
  /** A recovery record was there after the kill. */
  record: boolean;
  delayMs: number;
}

describe.skipIf(!ready)('quick-lane chaos on the real swarm', () => {
  it(`SIGKILLs ${ITERATIONS} quick runs anywhere in the lane; the warm app always ends at its version with its data (seed ${SEED})`, {
    timeout: 15 * 60_000,
  }, async () => {
    const world = newWorld();
    const rng = new Random(SEED);
    const t0 = Date.now();
    console.log(`quick chaos: seed ${SEED} (replay with CCCI_CHAOS_SEED=${SEED}), ${ITERATIONS} iterations, world ${world.base}`);

    const warm = await warmApp(world, VERSION);
    const warmStack = warm.replaceAll('.', '_');
    const envBefore = readFileSync(envFile(world, warm), 'utf8');
    const lockfile = join(world.locks, `cc-ci-app-${warm}.lock`);
    // Every quick run tests this PR head: its label and page say PR_VERSION, so a warm app left at
    // it (or a rollback to the wrong tree) is told apart from VERSION.
    // (sed's basic regexps: `+` is literal, `.` is not.)
    const head = forgeHead(world, 'quick-pr', `s/${VERSION.replaceAll('.', '\\.')}/${PR_VERSION}/g`, 'a PR head');

    /**
     * A quick run's environment. Its operator test overwrites the warm app's data, then sleeps:
     * a rollback that does not restore the snapshot leaves `pr-data` behind. http.sh checks the
     * tests ran against the PR head.
     */
    const quickEnv = (id: string, sleepS: number): NodeJS.ProcessEnv => ({
      ...world.env,
      ...head,
      RECIPE: 'ccci-demo',
      CCCI_RUN_ID: id,
      CCCI_WARM_APPS: warm,
      ...operatorTests(world, id, {
        'ccci-demo': {
          'ccci.yml': `env:\n  EXPECT: "ccci-demo ${PR_VERSION}"\n`,
          // Named to sort before the recipe's own tests: the data is changed early in the stage.
          'data.sh': [
            '#!/bin/sh',
            'set -eu',
            `container=$(docker ps -q --filter "label=com.docker.swarm.service.name=\${STACK_NAME}_app" --filter status=running | head -n 1)`,
            `docker exec "$container" sh -c 'echo pr-data > ${MARKER}'`,
            `sleep ${sleepS}`,
            '',
          ].join('\n'),
        },
      }),
    });

    /** The warm app as it was, its lock free, and nothing of any cold app of this world. */
    const assertAllBack = async (context: string): Promise<void> => {
      await assertWarmAsItWas(world, warm, VERSION, context);
      // The whole .env, not just TYPE: the lane's ccci.yml env (EXPECT) must be gone too.
      expect(readFileSync(envFile(world, warm), 'utf8'), context).toBe(envBefore);
      const container = (await appContainer(warm))!;
      const { stdout: health } = await execa('docker', ['inspect', container, '--format', '{{.State.Health.Status}}']);
      expect(health, context).toBe('healthy');
      const { stdout: replicas } = await execa('docker', [
        'service',
        'ls',
        '--filter',
        `name=${warmStack}_app`,
        '--format',
        '{{.Replicas}}',
      ]);
      expect(replicas, context).toBe('1/1');
      expect(lockState(lockfile), `the warm app's lock\n${context}`).not.toBe('held');
      // A quick run never deploys an app of its own: no run-app (<4>-<6 hex>) stack, volume,
      // secret, network or .env of this world, and nothing else but the warm app's.
      const cold = (await world.leftovers()).filter((name) => !name.startsWith(`${warmStack}_`) && name !== warmStack);
      const envs = readdirSync(join(world.home, '.abra', 'servers', 'default')).filter((name) => name !== `${warm}.env`);
      expect([...cold, ...envs], `cold leftovers\n${context}`).toEqual([]);
    };

    const kills: Kill[] = [];
    const stepRuns = new Set<number>(); // runs whose wrapper we killed: their own session, reaped in finally
    // Phase durations (ms) from each aim marker to the next phase, refined from every run's log;
    // mid-tests' without the operator test's sleep, which each run draws anew. Seeded with what
    // they took on a 2-core test machine: an overestimate aims the first kills past their phase.
    const estimate: Record<Phase, number> = { 'before-record': 450, 'mid-upgrade': 9000, 'mid-tests': 200, 'mid-rollback': 8500 };
    /** Refines the estimates from the phases a run got through before `until` (its kill), but `skip`. */
    const refine = (starts: Starts, until: number, sleepS: number, skip: Phase[] = []): void => {
      const next: (number | null)[] = [...PHASES.slice(1).map((p) => starts.landing[p]), starts.end];
      PHASES.forEach((phase, p) => {
        const a = starts.aim[phase];
        const b = next.slice(p).find((t) => t !== null) ?? null;
        if (a === null || b === null || b > until || skip.includes(phase)) return;
        const lasted = b - a - (phase === 'mid-tests' ? sleepS * 1000 : 0);
        estimate[phase] = Math.round(0.5 * estimate[phase] + 0.5 * Math.max(1, lasted));
      });
    };

    // The plan: every phase equally often in a seeded order; one kill per phase hits the step
    // wrapper (a quarter of them, if that is more), the rest the whole group, whose recoveries
    // alternate between warm-reconcile and the next quick run.
    const plan: { aimed: Phase; how: Kill['how']; recovery: Recovery }[] = rng
      .shuffle(Array.from({ length: ITERATIONS }, (_, i) => PHASES[i % PHASES.length]!))
      .map((aimed) => ({ aimed, how: 'group' as const, recovery: 'warm-reconcile' as const }));
    for (const phase of PHASES) {
      const candidates = plan.filter((p) => p.aimed === phase && p.how === 'group');
      if (candidates.length) rng.pick(candidates).how = 'step-wrapper';
    }
    const extra = Math.max(0, Math.round(ITERATIONS / 4) - PHASES.length);
    for (const entry of rng.shuffle(plan.filter((p) => p.how === 'group')).slice(0, extra)) entry.how = 'step-wrapper';
    let alternate = 0;
    for (const entry of plan) {
      if (entry.how === 'step-wrapper') entry.recovery = 'by itself';
      else entry.recovery = alternate++ % 2 === 0 ? 'warm-reconcile' : 'next quick run';
    }
    const streams = plan.map(() => rng.fork());

    const iteration = async (i: number): Promise<void> => {
      const { aimed, how, recovery } = plan[i - 1]!;
      const r = streams[i - 1]!;
      const id = `chaos-${i}`;
      const sleepS = r.int(1, 3);
      const env = quickEnv(id, sleepS);
      const spawned = Date.now();
      let helper: Helper;
      let runPid: number;
      if (how === 'group') {
        helper = startCli(['run', '--quick'], { env });
        runPid = helper.pid;
      } else {
        helper = startCli(['step', '--', process.execPath, CLI, 'run', '--quick'], { env });
        runPid = await until('the step wrapper to start the run', 10_000, () => childOf(helper.pid));
        stepRuns.add(runPid);
      }

      const marker = aimMarkers(warm)[aimed];
      if (marker !== null) await helper.waitFor(marker, 180_000);
      const span = estimate[aimed] + (aimed === 'mid-tests' ? sleepS * 1000 : 0);
      const delayMs = Math.round(r.float() * 0.8 * span);
      await sleep(delayMs);
      const killAt = Date.now();
      // A wrapper kill: the run's parent-death signal takes over, and it rolls back by itself.
      await killRun(how, helper, runPid, id);
      if (how === 'step-wrapper') stepRuns.delete(runPid);

      const starts = phaseStarts(world, id, warm, spawned);
      const landed = landedIn(starts, killAt);
      refine(starts, killAt, sleepS);
      const record = existsSync(warmRecordPath(world, warm));
      kills.push({ iteration: i, aimed, landed, how, recovery, record, delayMs });
      const logPath = join(world.runs, id, 'run.log');
      const transcript = (): string =>
        `--- ${id} (${how} killed, aimed ${aimed}, landed ${landed}) ---\n${existsSync(logPath) ? readFileSync(logPath, 'utf8') : '(no run.log)'}`;

      if (how === 'step-wrapper') {
        // Before anything else looks: the wrapper's death reached the run as SIGTERM (or, had it
        // died before the run armed its parent-death signal, the run refused to start as an
        // orphan), and the run put the warm app back by itself.
        expect(record, `the run left its recovery record\n${transcript()}`).toBe(false);
        const logged = runLog(world, id).map((e) => e.line);
        const resultsPath = join(world.runs, id, 'results.json');
        if (!existsSync(resultsPath)) {
          expect(
            logged.some((l) => l.startsWith('== refusing to run:')),
            transcript(),
          ).toBe(true);
        } else {
          const results = JSON.parse(readFileSync(resultsPath, 'utf8')) as {
            exitCode: number;
            warm?: { versionAfter: string | null; rollback: { verdict: string } };
          };
          expect(
            logged.some((l) => /^== SIGTERM received/.test(l)),
            transcript(),
          ).toBe(true);
          expect([143, 0], `${JSON.stringify(results)}\n${transcript()}`).toContain(results.exitCode);
          if (results.warm !== undefined)
            expect(results.warm, transcript()).toMatchObject({ versionAfter: VERSION, rollback: { verdict: 'pass' } });
        }
      } else {
        // The record is written before the upgrade stage and removed at the end of the rollback.
        if (landed !== 'before-record' && landed !== 'after-rollback')
          expect(record, `no recovery record after a kill ${landed}\n${transcript()}`).toBe(true);
        if (recovery === 'warm-reconcile') {
          const reconcile = startCli(['warm-reconcile', '--apps', warm, '--json'], { env: world.env });
          expect(await reconcile.exited, `${reconcile.output()}\n${transcript()}`).toEqual({ code: 0, signal: null });
          // At the latest version already: after any rollback, nothing to upgrade.
          expect(jsonOf(reconcile), `${reconcile.output()}\n${transcript()}`).toEqual({
            rolledBack: record ? [warm] : [],
            upgraded: [],
            current: [warm],
            skipped: [],
          });
        } else {
          const nextId = `${id}-next`;
          const nextSleepS = r.int(1, 3);
          const nextSpawned = Date.now();
          const run = startCli(['run', '--quick'], { env: quickEnv(nextId, nextSleepS) });
          expect(await run.exited, `${run.output()}\n${transcript()}`).toEqual({ code: 0, signal: null });
          // A whole run: every phase measured, but before-record when it first completed a rollback.
          refine(phaseStarts(world, nextId, warm, nextSpawned), Number.POSITIVE_INFINITY, nextSleepS, record ? ['before-record'] : []);
          const log = runLog(world, nextId).map((e) => e.line);
          const completing = log.findIndex((l) => l.startsWith(`== warm app ${warm}: run ${id} (pid `));
          if (record) {
            expect(log[completing], run.output()).toMatch(/left it mid-quick-lane — completing its rollback first ==$/);
            expect(completing, run.output()).toBeLessThan(log.indexOf('== stage upgrade =='));
          } else expect(completing, run.output()).toBe(-1);
          // Its own tests ran against the PR head.
          expect(run.output()).toContain(`http.sh: ${warmStack}_app answered: ccci-demo ${PR_VERSION}`);
        }
      }

      await assertAllBack(transcript());
      console.log(
        `quick chaos: #${i} ${how} aimed ${aimed} landed ${landed} after ${delayMs} ms, record ${record ? 'left' : 'none'}, recovered ${recovery} — ${Math.round((Date.now() - spawned) / 100) / 10} s`,
      );
    };

    try {
      for (let i = 1; i <= ITERATIONS; i++) await iteration(i);
    } finally {
      killGroups(stepRuns);
      const byPhase = (how?: Kill['how']): string => countByPhase(kills, [...PHASES, 'after-rollback'], how);
      const offAim = kills.filter((k) => k.aimed !== k.landed).map((k) => `#${k.iteration} ${k.aimed}->${k.landed}`);
      const recoveries = (['warm-reconcile', 'next quick run'] as const)
        .map((how) => {
          const of = kills.filter((k) => k.recovery === how);
          return `${how} ${of.length} (${of.filter((k) => k.record).length} with a record)`;
        })
        .join(', ');
      console.log(
        [
          `quick chaos summary: seed ${SEED}, ${kills.length}/${ITERATIONS} iterations, wall ${Math.round((Date.now() - t0) / 1000)} s`,
          `  kills by phase: ${byPhase()}`,
          `    whole process group: ${byPhase('group')}`,
          `    step wrapper only:   ${byPhase('step-wrapper')}`,
          `  recoveries after group kills: ${recoveries}`,
          `  landed off aim: ${offAim.length ? offAim.join(', ') : 'none'}`,
          `  phase estimates (ms): ${JSON.stringify(estimate)}`,
        ].join('\n'),
      );
    }
    expectEveryPhaseHit(kills, PHASES, 1);
  });
});
