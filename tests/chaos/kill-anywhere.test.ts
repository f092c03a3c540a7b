// Kill-anywhere chaos (issue 6 item 3): `cc-ci run` against the real swarm, SIGKILLed at a
// random instant of a chosen phase, over and over, with one janitor sweep after each kill, while a
// second run of another recipe stays green beside it.
//
// Phases: before the app lock; between the lock and `abra app new`; mid-deploy; mid-stage; while
// a dependency deploys; mid-teardown; while a dependency is torn down. The runs aimed at the two
// dependency phases declare one (ccci-dep, docs/recipes.md#dependencies): after each kill, nothing
// of the app or of its dependency may be left. The phase an iteration aims at comes from a seeded shuffle; the instant is a
// random fraction of that phase's duration as measured on earlier iterations (run.log timestamps);
// the phase the kill actually landed in is read afterwards from the run's timestamped log and the
// test-only abra's call log, so the summary counts real kills, not intentions.
//
// Most iterations SIGKILL the run's whole process group (a crashed runner: no teardown at all,
// the janitor must reap). Some SIGKILL only the `cc-ci step` wrapper the run was started under:
// the run's parent-death signal must turn that into a SIGTERM, and the run must tear down by
// itself, before any janitor looks.
//
// After each kill: one `cc-ci janitor --json` in the same world; then no stack, service,
// container, network, volume, secret, .env or lockfile of the killed run's domain may be left, and
// no janitor (ours or a run's own) may ever have reaped the companion run's app or reaped any app
// twice. At the end: nothing of this world left at all, every companion run green, and the
// canonical ~/.abra unchanged apart from servers/ (and its catalogue/ dir, which the first run
// creates empty by design: setupRunAbraDir links the per-run catalogue/ to it).
//
// Seed: CCCI_CHAOS_SEED (printed); CCCI_CHAOS_ITERATIONS overrides the iteration count (21: three kills per phase).
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

import { CLI as BUILT_CLI, isGone, startProcess, type Helper, type StartOptions } from '../support/processes.js';
import { childOf, countByPhase, expectEveryPhaseHit, killGroups, killRun, lockState, runLog, sleep, until } from '../support/chaos.js';
import { Random, seedFrom } from '../support/random.js';
import { customSleep, depDomainOf, domainOf, envFile, operatorTests, requireSwarm, useSwarmWorld, type World } from '../support/swarm.js';

const SEED = seedFrom('CCCI_CHAOS_SEED', 20_261_126);
const ITERATIONS = Number(process.env.CCCI_CHAOS_ITERATIONS || 21);
/** How long each companion run sits in its custom stage. */
const COMPANION_SLEEP_S = 40;
/** Iterations run this many at a time, in lanes (their runs, kills and sweeps overlap). */
const LANES = Number(process.env.CCCI_CHAOS_LANES || 2);
/** How long the swarm may take to remove a removed stack's network. */
const NETWORK_GRACE_MS = 20_000;
const PHASES = ['before-lock', 'lock-to-app-new', 'mid-deploy', 'mid-stage', 'dep-deploy', 'mid-teardown', 'dep-teardown'] as const;
/** The phases only a run with a dependency has. */
const DEP_PHASES: readonly Phase[] = ['dep-deploy', 'dep-teardown'];
const DEP = 'ccci-dep';
type Phase = (typeof PHASES)[number];
type Landed = Phase | 'after-exit';

// CCCI_CHAOS_CLI runs another build of the CLI (a deliberately broken copy, to show this test
// catches the break); default: this checkout's dist/runner/cli.js.
const CLI = process.env.CCCI_CHAOS_CLI || BUILT_CLI;
const startCli = (args: string[], options: StartOptions = {}): Helper => startProcess(process.execPath, [CLI, ...args], options);

const ready = requireSwarm();
const newWorld = useSwarmWorld(['ccci-demo', 'ccci-other', DEP]);

// ---------------------------------------------------------------------------------------------
// Observing a run.

/** When the test-only abra was first invoked with argv starting `words` for `domain`. */
function abraCall(abraLog: string, words: string[], domain: string): number | null {
  if (!existsSync(abraLog)) return null;
  for (const raw of readFileSync(abraLog, 'utf8').split('\n')) {
    if (!raw.trim()) continue;
    const call = JSON.parse(raw) as { time: string; argv: string[] };
    if (words.every((w, i) => call.argv[i] === w) && call.argv.includes(domain)) return Date.parse(call.time);
  }
  return null;
}

type Starts = Record<Phase | 'dep-ready' | 'end', number | null>;

/** When each phase of a run began, from its log (null: not reached). `dep`: its dependency's domain, if it has one. */
function phaseStarts(world: World, id: string, domain: string, dep: string | null, abraLog: string): Starts {
  const log = runLog(world, id);
  const first = (test: (line: string) => boolean): number | null => log.find((entry) => test(entry.line))?.at ?? null;
  const last = dep ?? domain;
  return {
    'before-lock': log[0]?.at ?? null,
    'lock-to-app-new': first((l) => l.startsWith(`== app lock held: ${domain}`)),
    'mid-deploy': abraCall(abraLog, ['app', 'new'], domain),
    'mid-stage': first((l) => l.startsWith('== stage ')),
    'dep-deploy': dep === null ? null : first((l) => l.startsWith(`== dependency ${DEP}: deploying as ${dep}`)),
    // Its tests run between the dependency's deploy and the teardown: mid-stage again.
    'dep-ready':
      dep === null ? null : first((l) => l.startsWith(`== dependency ${DEP}: ready at`) || l.startsWith(`!! dependency ${DEP} `)),
    'mid-teardown': first((l) => l === `== teardown: ${domain} ==`),
    'dep-teardown': dep === null ? null : first((l) => l === `== teardown: ${dep} ==`),
    end: first((l) => l.startsWith(`== teardown: ${last} — nothing left`) || / run \S+: exit \d+ ==$/.test(l)),
  };
}

/** The phase a kill at `at` landed in. */
function landedIn(starts: Starts, at: number): Landed {
  if (starts.end !== null && starts.end <= at) return 'after-exit';
  let landed: Phase = 'before-lock';
  for (const phase of PHASES) if (starts[phase] !== null && starts[phase]! <= at) landed = phase;
  if (landed === 'dep-deploy' && starts['dep-ready'] !== null && starts['dep-ready'] <= at) return 'mid-stage';
  return landed;
}

// ---------------------------------------------------------------------------------------------
// What is left of a domain.

async function dockerNames(args: string[]): Promise<string[]> {
  const { stdout } = await execa('docker', args);
  return stdout
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Everything the swarm and the world still have of `domain` (networks are checked separately). */
async function residue(world: World, domain: string): Promise<string[]> {
  const stack = domain.replaceAll('.', '_').slice(0, 45);
  const own = (names: string[]): string[] => names.filter((n) => n.startsWith(`${stack}_`));
  const left = [
    ...(await dockerNames(['stack', 'ls', '--format', '{{.Name}}'])).filter((n) => n === stack).map((n) => `stack ${n}`),
    ...own(await dockerNames(['service', 'ls', '--format', '{{.Name}}'])).map((n) => `service ${n}`),
    ...(await dockerNames(['ps', '-a', '--filter', `label=com.docker.stack.namespace=${stack}`, '--format', '{{.Names}}'])).map(
      (n) => `container ${n}`,
    ),
    ...own(await dockerNames(['volume', 'ls', '--format', '{{.Name}}'])).map((n) => `volume ${n}`),
    ...own(await dockerNames(['secret', 'ls', '--format', '{{.Name}}'])).map((n) => `secret ${n}`),
  ];
  if (existsSync(envFile(world, domain))) left.push(`.env ${envFile(world, domain)}`);
  const lockfile = join(world.locks, `cc-ci-app-${domain}.lock`);
  const state = settledLockState(lockfile);
  if (state !== 'absent') left.push(`${state === 'free' ? 'unheld' : 'HELD'} lockfile ${lockfile}`);
  return left;
}

/**
 * The lock state once transient holders are gone: the other lane's runs start with a janitor
 * sweep, which holds every candidate's lock for the moment of its probe. A leaked holder stays.
 */
function settledLockState(path: string): 'absent' | 'free' | 'held' {
  const deadline = Date.now() + 5_000;
  let state = lockState(path);
  while (state === 'held' && Date.now() < deadline) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    state = lockState(path);
  }
  return state;
}

async function networksOf(domain: string): Promise<string[]> {
  const stack = domain.replaceAll('.', '_').slice(0, 45);
  return (await dockerNames(['network', 'ls', '--format', '{{.Name}}'])).filter((n) => n.startsWith(`${stack}_`));
}

/** The canonical ~/.abra, outside servers/: relative path -> 'dir' | file hash | link target. */
function abraTree(home: string): Map<string, string> {
  const root = join(home, '.abra');
  const tree = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const rel = relative(root, path);
      if (rel === 'servers' || rel.startsWith('servers/')) {
        if (rel === 'servers') tree.set(rel, 'dir (contents not compared)');
        continue;
      }
      const st = lstatSync(path);
      if (st.isSymbolicLink()) tree.set(rel, `link -> ${readlinkSync(path)}`);
      else if (st.isDirectory()) {
        tree.set(rel, 'dir');
        walk(path);
      } else tree.set(rel, `file ${st.mode.toString(8)} ${createHash('sha1').update(readFileSync(path)).digest('hex')}`);
    }
  };
  if (existsSync(root)) walk(root);
  return tree;
}

// ---------------------------------------------------------------------------------------------

interface Kill {
  iteration: number;
  lane: number;
  aimed: Phase;
  landed: Landed;
  how: 'group' | 'step-wrapper';
  domain: string;
  delayMs: number;
}

/** What a janitor's teardown of `domain` did, from its log: the lines between its two markers. */
function teardownActions(log: string, domain: string): string[] {
  const lines = log.split('\n');
  const start = lines.indexOf(`== teardown: ${domain} ==`);
  if (start < 0) return [];
  const end = lines.findIndex((l, i) => i > start && l.startsWith(`== teardown: ${domain} — `));
  return lines.slice(start + 1, end < 0 ? undefined : end).filter((l) => l.trim() !== '');
}

/** Lines of a run's log worth showing when something of it was left behind. */
function teardownLines(world: World, id: string): string[] {
  return runLog(world, id)
    .map((e) => `${new Date(e.at).toISOString()} ${e.line}`)
    .filter((l) => /teardown|undeploy|network|stack rm|failed|removed|nothing left|exit \d+ ==/.test(l));
}

describe.skipIf(!ready)('kill-anywhere chaos on the real swarm', () => {
  it(`SIGKILLs ${ITERATIONS} runs at random instants; the janitor leaves nothing and a live run stays green (seed ${SEED})`, {
    timeout: 20 * 60_000,
  }, async () => {
    const world = newWorld();
    const rng = new Random(SEED);
    const t0 = Date.now();
    const abraLog = join(world.runs, 'abra-calls.jsonl');
    // The runs' temp dir is the world's, so the check that no run writes its state there sees
    // only this test's runs.
    const tmp = join(dirname(world.runs), 'tmp');
    mkdirSync(tmp);
    const env = { ...world.env, CCCI_TEST_ABRA_LOG: abraLog, TMPDIR: tmp };
    console.log(
      `chaos: seed ${SEED} (replay with CCCI_CHAOS_SEED=${SEED}), ${ITERATIONS} iterations in ${LANES} lanes, world ${world.base}`,
    );

    const before = abraTree(world.home);
    const kills: Kill[] = [];
    const leftovers: string[] = [];
    const notes: string[] = [];
    // Every reap any janitor reported, with the sweep's time window and what it logged.
    interface Reap {
      who: string;
      from: number;
      to: number;
      detail: string;
    }
    const reapedBy = new Map<string, Reap[]>();
    const companions: { id: string; domain: string; helper: Helper; exitAt: number | null }[] = [];
    const stepRuns = new Set<number>(); // runs started by a wrapper we killed: their own session
    let stopping = false; // a lane failed: the other stops at its next iteration
    // Phase durations (ms), refined from every run's log as it goes.
    const estimate: Record<Phase, number> = {
      'before-lock': 500,
      'lock-to-app-new': 60,
      'mid-deploy': 3500,
      'mid-stage': 2500,
      'dep-deploy': 5000,
      'mid-teardown': 6000,
      'dep-teardown': 6000,
    };

    const noteReaps = (reap: Reap, domains: string[]): void => {
      for (const domain of domains) reapedBy.set(domain, [...(reapedBy.get(domain) ?? []), reap]);
    };
    /** The reaps a run's own janitor reported, the sweep window taken wide (from the run's start). */
    const runJanitorLines = (id: string): void => {
      const log = runLog(world, id);
      for (const entry of log) {
        const match = /^== janitor: reaped \[([^\]]*)\]/.exec(entry.line);
        const detail = log
          .filter((e) => e.at <= entry.at)
          .map((e) => e.line)
          .join('\n');
        if (match?.[1]) noteReaps({ who: `${id}'s own janitor`, from: log[0]!.at, to: entry.at, detail }, match[1].split(', '));
      }
    };
    /** When a run took its app lock (from its log), or null. */
    const lockedAt = (id: string, domain: string): number | null =>
      runLog(world, id).find((e) => e.line.startsWith(`== app lock held: ${domain}`))?.at ?? null;
    /**
     * No janitor ever reaps a companion's app. A janitor may still report one "reaped": it
     * discovered the app while the companion was alive, and probed it after the companion had
     * torn it down and exited, so its teardown found nothing to do. That is the only allowed case:
     * a reap while the companion held its lock throughout the sweep, or a reap whose teardown
     * removed anything, fails with the evidence.
     */
    const checkCompanions = (): void => {
      for (const companion of companions) {
        for (const reap of reapedBy.get(companion.domain) ?? []) {
          const held = lockedAt(companion.id, companion.domain);
          const alive = held !== null && held < reap.from && (companion.exitAt === null || companion.exitAt > reap.to);
          const actions = teardownActions(reap.detail, companion.domain);
          if (!alive && actions.length === 0) continue;
          const when = `sweep ${new Date(reap.from).toISOString()}..${new Date(reap.to).toISOString()}, companion locked ${held === null ? 'never' : new Date(held).toISOString()}, exited ${companion.exitAt === null ? 'not yet' : new Date(companion.exitAt).toISOString()}`;
          const transcript = `--- ${reap.who} ---\n${reap.detail}\n--- ${companion.id} ---\n${companion.helper.lines.slice(-40).join('\n')}`;
          expect.fail(
            alive
              ? `LIVE RUN REAPED: ${reap.who} reaped the companion ${companion.domain} while it held its lock (${when})\n${transcript}`
              : `the companion ${companion.domain}'s app was torn down by ${reap.who} (${when}): ${actions.join(' | ')}\n${transcript}`,
          );
        }
      }
    };
    /** Reaps that removed something (a janitor's teardown of an already-gone app does nothing). */
    const effectiveReaps = (domain: string): Reap[] =>
      (reapedBy.get(domain) ?? []).filter((r) => teardownActions(r.detail, domain).length > 0);
    const sweepOnce = async (
      who: string,
    ): Promise<{ reaped: string[]; live: string[]; skipped: { domain: string; reason: string }[]; stdout: string; stderr: string }> => {
      const from = Date.now();
      const sweep = await execa(process.execPath, [CLI, 'janitor', '--json'], {
        env: { ...process.env, ...env },
        reject: false,
        timeout: 240_000,
      });
      expect(sweep.exitCode, `${who}: ${sweep.stderr}`).toBe(0);
      const report = JSON.parse(sweep.stdout) as { reaped: string[]; live: string[]; skipped: { domain: string; reason: string }[] };
      noteReaps({ who, from, to: Date.now(), detail: sweep.stderr }, report.reaped);
      return { ...report, stdout: sweep.stdout, stderr: sweep.stderr };
    };

    // The companion: ccci-other, holding its app through a long custom stage, restarted when
    // done. Its stage lasts COMPANION_SLEEP_S, or less once the chaos is nearly over, so the test
    // does not sit waiting for a companion at the end.
    let companionIndex = 0;
    let iterationsDone = 0;
    const startCompanion = (): void => {
      const k = companionIndex++;
      const id = `companion-${k}`;
      const pr = String(900 + k);
      const perIteration = iterationsDone ? (Date.now() - t0) / iterationsDone : Infinity;
      const sleepS = Math.max(5, Math.min(COMPANION_SLEEP_S, Math.round((perIteration * (ITERATIONS - iterationsDone)) / 1000)));
      const helper = startCli(['run'], {
        env: {
          ...env,
          RECIPE: 'ccci-other',
          PR: pr,
          CCCI_RUN_ID: id,
          STAGES: 'install,custom',
          ...customSleep(world, id, 'ccci-other', sleepS),
        },
      });
      const companion = { id, domain: domainOf(world, 'ccci-other', pr), helper, exitAt: null as number | null };
      void helper.exited.then(() => (companion.exitAt = Date.now()));
      companions.push(companion);
    };
    const companionDone = async (companion: (typeof companions)[number]): Promise<void> => {
      const exit = await companion.helper.exited;
      expect(exit, `companion ${companion.id} must stay green:\n${companion.helper.output()}`).toEqual({ code: 0, signal: null });
      const results = JSON.parse(readFileSync(join(world.runs, companion.id, 'results.json'), 'utf8')) as {
        stages: { name: string; verdict: string }[];
        teardown: string;
      };
      expect(results.stages.map((s) => `${s.name}:${s.verdict}`)).toEqual(['install:pass', 'custom:pass']);
      expect(results.teardown).toBe('clean');
      runJanitorLines(companion.id);
      const networks = await settledNetworks(companion.domain, companion.id);
      if (networks.length) {
        leftovers.push(`${companion.id} (green, not killed): ${networks.map((n) => `network ${n}`).join(', ')}`);
        console.log(`chaos: ${companion.id} left ${networks.join(', ')}:\n${teardownLines(world, companion.id).join('\n')}`);
      }
    };
    /** Restarts a finished companion; while one sits in its stage, its app must be there. */
    let tending: Promise<void> = Promise.resolve();
    const tendCompanion = (): Promise<void> =>
      (tending = tending.then(async () => {
        const current = companions[companions.length - 1]!;
        if (isGone(current.helper.pid)) {
          await companionDone(current);
          if (!stopping) startCompanion();
          return;
        }
        const midStage = (): boolean =>
          current.helper.lines.some((l) => l.startsWith('== custom: pause.sh')) &&
          !current.helper.lines.some((l) => l.startsWith('== teardown:'));
        if (!midStage()) return;
        const services = (await dockerNames(['service', 'ls', '--format', '{{.Name}}'])).filter((n) =>
          n.startsWith(current.domain.replaceAll('.', '_')),
        );
        if (midStage()) expect(services, `the live companion ${current.domain} lost its app`).not.toEqual([]);
      }));

    /**
     * A stack's networks, once the swarm has had time to remove them (removal is asynchronous).
     * A network that outlived its run's teardown but went within the grace is noted in the summary.
     */
    const settledNetworks = async (domain: string, who: string): Promise<string[]> => {
      const since = Date.now();
      const deadline = since + NETWORK_GRACE_MS;
      for (let probe = 0; ; probe++) {
        const networks = await networksOf(domain);
        if (networks.length === 0 && probe > 0) notes.push(`${who}: its network outlived the teardown by ${Date.now() - since} ms`);
        if (networks.length === 0 || Date.now() > deadline) return networks;
        await sleep(250);
      }
    };

    // The plan: every phase equally often, in a seeded order; a quarter of the kills hit the
    // step wrapper instead of the run's group, at least one in each phase.
    const plan: { aimed: Phase; how: Kill['how'] }[] = rng
      .shuffle(Array.from({ length: ITERATIONS }, (_, i) => PHASES[i % PHASES.length]!))
      .map((aimed) => ({ aimed, how: 'group' as const }));
    for (const phase of PHASES) {
      const candidates = plan.filter((p) => p.aimed === phase && p.how === 'group');
      if (candidates.length) rng.pick(candidates).how = 'step-wrapper';
    }
    for (const entry of rng.shuffle(plan).slice(0, Math.max(0, Math.round(ITERATIONS / 4) - PHASES.length))) entry.how = 'step-wrapper';
    // Each iteration draws from its own stream, so a lane's timing never changes another's choices.
    const streams = plan.map(() => rng.fork());

    const iteration = async (i: number, lane: number): Promise<void> => {
      const { aimed, how } = plan[i - 1]!;
      const r = streams[i - 1]!;
      const id = `chaos-${i}`;
      const pr = String(i);
      const domain = domainOf(world, 'ccci-demo', pr);
      const dep = DEP_PHASES.includes(aimed) ? depDomainOf(world, domain, DEP) : null;
      const sleepS = r.int(1, 3);
      const runEnv = {
        ...env,
        RECIPE: 'ccci-demo',
        PR: pr,
        CCCI_RUN_ID: id,
        STAGES: 'install,custom',
        ...(dep === null
          ? customSleep(world, id, 'ccci-demo', sleepS)
          : operatorTests(world, id, {
              'ccci-demo': { 'ccci.yml': `env:\n  CCCI_TEST_CUSTOM_SLEEP: "${sleepS}"\ndeps:\n  - recipe: ${DEP}\n` },
            })),
      };
      const started = Date.now();
      let helper: Helper;
      let runPid: number;
      if (how === 'group') {
        helper = startCli(['run'], { env: runEnv });
        runPid = helper.pid;
      } else {
        helper = startCli(['step', '--', process.execPath, CLI, 'run'], { env: runEnv });
        runPid = await until('the step wrapper to start the run', 10_000, () => childOf(helper.pid));
        stepRuns.add(runPid);
      }

      // Wait for the aimed phase to begin, then a random part of its expected length.
      const startMarker: Record<Phase, string | null> = {
        'before-lock': null,
        'lock-to-app-new': `== app lock held: ${domain}`,
        'mid-deploy': `$ abra app new ccci-demo`,
        'mid-stage': '== stage install ==',
        'dep-deploy': `== dependency ${DEP}: deploying as`,
        'mid-teardown': `== teardown: ${domain} ==`,
        'dep-teardown': `== teardown: ${dep} ==`,
      };
      const marker = startMarker[aimed];
      if (marker !== null) await helper.waitFor(marker, 180_000);
      const delayMs = Math.round(r.float() * 0.85 * estimate[aimed]);
      await sleep(delayMs);
      const killAt = Date.now();
      // A wrapper kill: the run's parent-death signal takes over, and it tears down by itself.
      await killRun(how, helper, runPid, id);
      if (how === 'step-wrapper') stepRuns.delete(runPid);

      const starts = phaseStarts(world, id, domain, dep, abraLog);
      const landed = landedIn(starts, killAt);
      kills.push({ iteration: i, lane, aimed, landed, how, domain, delayMs });
      // Refine the phase estimates from what this run got through: a phase lasts until the next
      // one this run reached (a dependency's deploy until it is ready).
      const order: (Phase | 'dep-ready' | 'end')[] = [...PHASES, 'end'];
      for (let p = 0; p < PHASES.length; p++) {
        const a = starts[PHASES[p]!];
        const next = PHASES[p] === 'dep-deploy' ? 'dep-ready' : order.slice(p + 1).find((phase) => starts[phase] !== null);
        const b = next === undefined ? null : starts[next];
        if (a !== null && b !== null && b <= killAt)
          estimate[PHASES[p]!] = Math.round(0.5 * estimate[PHASES[p]!] + 0.5 * Math.max(1, b - a));
      }
      const logged = runLog(world, id).map((e) => e.line);
      runJanitorLines(id);

      if (how === 'step-wrapper') {
        // The wrapper's death reached the run as SIGTERM (or, had it died before the run armed its
        // parent-death signal, the run refused to start as an orphan). Either way the run tore
        // itself down before any janitor came: nothing of it is left.
        const resultsPath = join(world.runs, id, 'results.json');
        const transcript = `${id} (wrapper killed ${landed})\n${logged.join('\n')}`;
        if (!existsSync(resultsPath)) {
          expect(
            logged.some((l) => l.startsWith('== refusing to run:')),
            transcript,
          ).toBe(true);
        } else {
          const results = JSON.parse(readFileSync(resultsPath, 'utf8')) as { exitCode: number; teardown: string };
          expect(
            logged.some((l) => /^== SIGTERM received( during teardown — ignored)? /.test(l)),
            transcript,
          ).toBe(true);
          expect([143, 0], `${JSON.stringify(results)}\n${transcript}`).toContain(results.exitCode);
          if (landed !== 'before-lock') expect(results.teardown, transcript).toBe('clean');
          for (const torn of (results as { deps?: { teardown: string }[] }).deps ?? [])
            expect(torn.teardown, transcript).not.toBe('residual');
        }
        const left = [...(await residue(world, domain)), ...(dep === null ? [] : await residue(world, dep))].filter(
          (item) => !item.startsWith('unheld lockfile'),
        );
        if (left.length) leftovers.push(`${id} (wrapper killed ${landed}) before the janitor: ${left.join(', ')}`);
        expect(left, `${id}: the run must tear down by itself when its wrapper dies`).toEqual([]);
      }

      // One janitor sweep, as the next CI step's run would do it.
      const report = await sweepOnce(`janitor after ${id}`);
      // Another lane's janitor, or a run's own, may have been reaping this very orphan as we swept
      // (we then saw its lock held): its outcome is what counts, so wait for the lock to be free.
      for (const owned of dep === null ? [domain] : [domain, dep]) {
        const lockfile = join(world.locks, `cc-ci-app-${owned}.lock`);
        await until(`${owned}'s lock to be free after the sweeps`, 240_000, () => lockState(lockfile) !== 'held');
      }
      const raced = new Set(['lockfile unlinked by another janitor during this sweep']);
      expect(
        report.skipped.filter((s) => !raced.has(s.reason)),
        `janitor after ${id}: ${report.stderr}`,
      ).toEqual([]);

      const left = await residue(world, domain);
      left.push(...(await settledNetworks(domain, id)).map((n) => `network ${n}`));
      if (dep !== null) {
        left.push(...(await residue(world, dep)).map((item) => `dependency ${item}`));
        left.push(...(await settledNetworks(dep, `${id}'s dependency`)).map((n) => `dependency network ${n}`));
      }
      if (left.length) {
        leftovers.push(`${id} (killed ${landed}, ${how}): ${left.join(', ')}`);
        console.log(`chaos: ${id} left ${left.join(', ')}:\n${teardownLines(world, id).join('\n')}\n--- janitor ---\n${report.stderr}`);
      }
      expect(
        left,
        `${id} killed ${landed} (${how}); janitor said ${report.stdout}\n${report.stderr}\n--- run log ---\n${logged.join('\n')}`,
      ).toEqual([]);

      checkCompanions();
      for (const reaped of reapedBy.keys()) {
        const effective = effectiveReaps(reaped);
        expect(
          effective.length,
          `${reaped} torn down by more than one janitor:\n${effective.map((r) => `--- ${r.who} ---\n${r.detail}`).join('\n')}`,
        ).toBeLessThanOrEqual(1);
      }
      iterationsDone++;
      await tendCompanion();
      console.log(
        `chaos: #${i} lane ${lane} ${how} aimed ${aimed} landed ${landed} after ${delayMs} ms — ${Math.round((Date.now() - started) / 100) / 10} s`,
      );
    };

    startCompanion();
    try {
      // LANES lanes take the iterations in turn: their runs, kills and sweeps overlap.
      const lanes = Array.from({ length: LANES }, async (_, lane) => {
        for (let i = lane + 1; i <= ITERATIONS && !stopping; i += LANES) {
          try {
            await iteration(i, lane);
          } catch (error) {
            stopping = true;
            throw error;
          }
        }
      });
      const outcomes = await Promise.allSettled(lanes);
      const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
      if (failed) throw failed.reason;

      // The last companion finishes green; then a final sweep finds nothing to do.
      stopping = true;
      await tending;
      const last = companions[companions.length - 1]!;
      await companionDone(last);
      const report = await sweepOnce('final janitor');
      expect(report, report.stderr).toMatchObject({ reaped: [], live: [], skipped: [] });
      checkCompanions();

      const marker = world.base.replaceAll('.', '_');
      const deadline = Date.now() + NETWORK_GRACE_MS;
      let everything: string[];
      for (;;) {
        everything = [...(await world.leftovers())];
        everything.push(
          ...(await dockerNames(['network', 'ls', '--format', '{{.Name}}'])).filter((n) => n.includes(marker)).map((n) => `network ${n}`),
        );
        everything.push(
          ...(await dockerNames(['ps', '-a', '--format', '{{.Names}}'])).filter((n) => n.includes(marker)).map((n) => `container ${n}`),
        );
        if (everything.length === 0 || Date.now() > deadline) break;
        await sleep(250);
      }
      const serversDir = join(world.home, '.abra', 'servers', 'default');
      everything.push(...readdirSync(serversDir).map((name) => `.env ${name}`));
      everything.push(...readdirSync(world.locks).map((name) => `lockfile ${name}`));
      leftovers.push(...everything.map((item) => `at the end: ${item}`));
      expect(leftovers, 'nothing may be left behind').toEqual([]);

      const after = abraTree(world.home);
      const emptyCatalogue = (path: string): boolean =>
        path === 'catalogue' &&
        !before.has(path) &&
        after.get(path) === 'dir' &&
        readdirSync(join(world.home, '.abra', 'catalogue')).length === 0;
      const changed = [...new Set([...before.keys(), ...after.keys()])].filter((path) => before.get(path) !== after.get(path));
      // A run's state lives in its own run dir, never in the shared temp dir (a planted symlink
      // there was a local root exploit). What SIGKILLed runs left goes with their run dirs: reported.
      expect(
        readdirSync(tmp).filter((name) => name.startsWith('ccci-')),
        'run state in $TMPDIR',
      ).toEqual([]);
      const leftState = readdirSync(world.runs, { withFileTypes: true })
        .filter((entry) => entry.isDirectory())
        .flatMap((entry) =>
          readdirSync(join(world.runs, entry.name))
            .filter((name) => name.startsWith('state-'))
            .map((name) => `${entry.name}/${name}`),
        );
      if (leftState.length)
        notes.push(
          `state dirs left in the run dirs of SIGKILLed runs (${leftState.length}, e.g. ${leftState[0]}): they go with the run dir`,
        );
      if (changed.some(emptyCatalogue))
        notes.push('~/.abra/catalogue/ was created, empty, by the first run (setupRunAbraDir links the per-run catalogue/ to it)');
      changed.splice(0, changed.length, ...changed.filter((path) => !emptyCatalogue(path)));
      expect(
        changed.map((path) => `${path}: ${before.get(path) ?? '(absent)'} -> ${after.get(path) ?? '(absent)'}`),
        'the canonical ~/.abra changed outside servers/',
      ).toEqual([]);
    } finally {
      stopping = true;
      killGroups(stepRuns);
      const byPhase = (how?: Kill['how']): string => countByPhase(kills, [...PHASES, 'after-exit'], how);
      const aimedOff = kills.filter((k) => k.aimed !== k.landed).map((k) => `#${k.iteration} ${k.aimed}->${k.landed}`);
      console.log(
        [
          `chaos summary: seed ${SEED}, ${kills.length}/${ITERATIONS} iterations in ${LANES} lanes, wall ${Math.round((Date.now() - t0) / 1000)} s`,
          `  kills by phase: ${byPhase()}`,
          `    whole process group: ${byPhase('group')}`,
          `    step wrapper only:   ${byPhase('step-wrapper')}`,
          `  landed off aim: ${aimedOff.length ? aimedOff.join(', ') : 'none'}`,
          `  phase estimates (ms): ${JSON.stringify(estimate)}`,
          `  janitor reaps: ${[...reapedBy.values()].flat().length} reported, ${[...reapedBy.keys()].reduce((n, d) => n + effectiveReaps(d).length, 0)} that removed something; companions run: ${companions.length}`,
          ...notes.map((note) => `  note: ${note}`),
          `  leftovers found: ${leftovers.length ? leftovers.join('; ') : 'none'}`,
        ].join('\n'),
      );
    }
    // Every phase was actually hit (the plan aims at each one ITERATIONS / 5 times).
    expectEveryPhaseHit(kills, PHASES, PHASES.length);
  });
});
