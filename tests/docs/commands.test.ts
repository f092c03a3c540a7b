// Every command in README.md, docs/*.md and bench/README.md runs as written, or is checked as far as
// it safely can be, and every relative link and repository path the docs mention exists.
//
// - `cc-ci …` / `node dist/runner/cli.js …`: the subcommand exists, every flag used is in its
//   `--help`, every variable set in front of it is one the usage (or docs/concurrency.md's knob
//   table) names. The safe ones (`locks`, `janitor`, `--help`) are run in a temp world: a fake
//   abra and docker first on PATH, a lock dir with one live run (a real held lock) and one free
//   lockfile. Where the doc shows their output, the real output must have the same shape, and a
//   `cc-ci locks` table must be exactly what the formatter prints for the rows shown.
// - Other read-only commands (`lslocks`, `ps`, `cat /proc/…`, `node -e`, `node --version`) are run
//   in that world and must succeed. Commands that install, build or start services (`sudo bash
//   .ci/run`, `npm ci`, `npm test`, `npx node-gyp rebuild`) are not run: their scripts must exist
//   and parse (`bash -n`), their npm scripts and bench names must exist.
// - Every sh/bash block parses with `bash -n` and has no `<placeholder>` (a redirection if pasted).
// - A program this file does not know fails the test: every command a doc shows is looked at.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';

import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';

import type { AppLockInfo } from '../../lib/lockfiles.js';
import type { JanitorReport } from '../../lib/janitor.js';
import { formatLocks } from '../../runner/commands/locks.js';
import { fakeHost, type FakeHost } from '../support/fake-host.js';
import { liveRun } from '../support/janitor-fixtures.js';
import {
  blocks,
  consoleCommands,
  docFiles,
  headings,
  links,
  prose,
  readDoc,
  shellLines,
  simpleCommands,
  type Block,
  type SimpleCommand,
} from '../support/markdown.js';
import { CLI, ROOT, cleanup, type Helper } from '../support/processes.js';

const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; scripts: Record<string, string> };
const SHELL_LANGS = new Set(['sh', 'bash', 'shell']);

// ---------------------------------------------------------------------------------------------
// The world safe commands run in.

interface World {
  host: FakeHost;
  holder: Helper;
  env: NodeJS.ProcessEnv;
  /** What `cc-ci locks` lists, sorted: [domain, state]. */
  locks: [string, 'held' | 'free'][];
}

let world: World;

// A live run that is long-held (its lock taken three hours ago), an orphan abra still lists, a
// stale free lockfile with no app, and a planted directory where a listed app's lockfile should be.
const LIVE = 'hedg-a41d07.ci.commoninternet.net';
const ORPHAN = 'ghos-19be44.ci.commoninternet.net';
const STALE = 'keyc-3f9a1c.ci.commoninternet.net';
const PLANTED = 'mrbs-0b5e2d.ci.commoninternet.net';

async function makeWorld(): Promise<World> {
  const host = fakeHost([]);
  process.env.CCCI_APP_LOCK_DIR = host.locks; // the fixtures take their locks there
  const holder = await liveRun(LIVE);
  host.apps({ default: { apps: [LIVE, ORPHAN, PLANTED].map((domain) => ({ appName: domain, domain })) } });
  world = {
    host,
    holder,
    env: { ...host.env, CCCI_RUN_ID: '1234' },
    locks: [
      [ORPHAN, 'free'],
      [LIVE, 'held'],
      [STALE, 'free'],
    ],
  };
  resetWorld();
  return world;
}

/** Puts back what a janitor run took away (it reaps the orphan and tidies the stale lockfile). */
function resetWorld(): void {
  const at = (domain: string) => join(world.host.locks, `cc-ci-app-${domain}.lock`);
  const hoursAgo = (hours: number) => new Date(Date.now() - hours * 3_600_000);
  for (const [domain, hours] of [
    [ORPHAN, 1],
    [STALE, 2],
  ] as const) {
    if (!existsSync(at(domain))) writeFileSync(at(domain), '');
    utimesSync(at(domain), hoursAgo(hours), hoursAgo(hours));
  }
  utimesSync(at(LIVE), hoursAgo(3), hoursAgo(3)); // past twice the hard deadline: long-held
  if (!existsSync(at(PLANTED))) mkdirSync(at(PLANTED));
}

/** Runs `cc-ci args` in the world; stdout and stderr apart. */
async function cc(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  resetWorld();
  const result = await execa(process.execPath, [CLI, ...args], {
    env: { ...world.env, ...env },
    extendEnv: false,
    reject: false,
    timeout: 60_000,
  });
  return { code: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** Runs a shell line in the world, with `cc-ci` as a function for the built CLI and `pid` set to the live run. */
function shell(line: string): { status: number | null; output: string } {
  resetWorld();
  const script = `cc-ci() { ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"; }\nset -o pipefail\n${line.replace(/\bpid=\d+/g, `pid=${world.holder.pid}`)}`;
  const result = spawnSync('bash', ['-c', script], {
    env: { ...world.env, pid: String(world.holder.pid) },
    encoding: 'utf8',
    cwd: ROOT,
    timeout: 30_000,
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

// ---------------------------------------------------------------------------------------------
// What each program in a doc gets.

const usages = new Map<string, string>();

function usage(subcommand: string): string {
  if (!usages.has(subcommand)) {
    const result = spawnSync(process.execPath, [CLI, subcommand, '--help'], { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`cc-ci ${subcommand} --help exited ${result.status}: ${result.stderr}`);
    usages.set(subcommand, result.stdout);
  }
  return usages.get(subcommand)!;
}

const KNOBS = readDoc('docs/concurrency.md');

/** Static checks of a `cc-ci` command line (args after the bin). Returns problems found. */
let commandList: string | undefined;

function checkCli(args: string[], env: Record<string, string>, recurse = true): string[] {
  const [subcommand, ...rest] = args;
  if (subcommand === undefined || subcommand === '--help') return [];
  commandList ??= spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' }).stdout;
  const commands = commandList;
  if (!new RegExp(`^  ${subcommand} `, 'm').test(commands)) return [`cc-ci has no command ${JSON.stringify(subcommand)}`];
  const text = usage(subcommand);
  const problems: string[] = [];
  const dashdash = rest.indexOf('--');
  const own = dashdash === -1 ? rest : rest.slice(0, dashdash);
  for (const arg of own) {
    const flag = /^(--?[A-Za-z][\w-]*)/.exec(arg)?.[1];
    if (flag && !new RegExp(`(^|[\\s\\[|,])${flag.replace(/[-]/g, '\\-')}(?![\\w-])`, 'm').test(text))
      problems.push(`cc-ci ${subcommand}: ${flag} is not in its --help`);
  }
  for (const name of Object.keys(env)) {
    if (!text.includes(name) && !KNOBS.includes(`\`${name}\``))
      problems.push(`cc-ci ${subcommand}: ${name}= is neither in its --help nor in docs/concurrency.md`);
  }
  if (subcommand === 'step' && rest.length > 0) {
    if (dashdash === -1) problems.push('cc-ci step without --');
    else if (recurse) problems.push(...checkCommand({ env, words: rest.slice(dashdash + 1) }, 'static'));
  }
  return problems;
}

/** The bin part of a command: `cc-ci` or `node dist/runner/cli.js`; the args after it, or null. */
function cliArgs(words: string[]): string[] | null {
  if (words[0] === 'cc-ci') return words.slice(1);
  if (words[0] === 'node' && words[1] && normalize(words[1]) === 'dist/runner/cli.js') return words.slice(2);
  return null;
}

/** Whether a cc-ci command is safe to run in the world. */
function safeCli(args: string[]): boolean {
  const [subcommand, ...rest] = args;
  if (subcommand === undefined || rest.includes('--help') || subcommand === '--help') return true;
  return subcommand === 'locks' || subcommand === 'janitor';
}

/**
 * Checks one simple command: 'static' looks only; 'run' may run it (the caller runs the whole line).
 * Returns problems; an empty list means fine. Throws for a program this file does not know.
 */
function checkCommand(command: SimpleCommand, _mode: 'static' | 'run'): string[] {
  const words = command.words[0] === 'sudo' ? command.words.slice(1) : command.words;
  const [program, ...args] = words;
  if (program === undefined) return []; // a bare assignment such as pid=32097
  const cli = cliArgs(words);
  if (cli) return checkCli(cli, command.env);
  switch (program) {
    case 'bash':
    case 'sh': {
      const file = args.find((arg) => !arg.startsWith('-'));
      if (!file) return [`${program} without a script`];
      if (!existsSync(join(ROOT, file))) return [`${file} does not exist`];
      const parsed = spawnSync('bash', ['-n', join(ROOT, file)], { encoding: 'utf8' });
      return parsed.status === 0 ? [] : [`bash -n ${file}: ${parsed.stderr}`];
    }
    case 'npm': {
      const [verb, name, ...more] = args;
      if (verb === 'ci') return existsSync(join(ROOT, 'package-lock.json')) ? [] : ['npm ci without a package-lock.json'];
      if (verb === 'test') return PACKAGE.scripts.test ? [] : ['no test script'];
      if (verb === 'rebuild')
        return name === undefined || name === 'cc-ci' || name.startsWith('--') ? [] : [`npm rebuild ${name}: not this package`];
      if (verb === 'run') {
        if (!name || !PACKAGE.scripts[name]) return [`npm run ${name}: no such script`];
        if (name === 'bench') {
          return more
            .filter((bench) => !existsSync(join(ROOT, 'bench', `${bench}.bench.ts`)))
            .map((bench) => `npm run bench ${bench}: no bench/${bench}.bench.ts`);
        }
        return [];
      }
      // The tarball's build and install are tests/install/package.test.ts's: here, the names agree.
      if (verb === 'pack') return PACKAGE.scripts.prepack ? [] : ['npm pack without a prepack script: no prebuilt addon in the tarball'];
      if (verb === 'install') {
        const tarball = args.slice(1).filter((arg) => !arg.startsWith('-'));
        const flags = args.slice(1).filter((arg) => arg.startsWith('-') && !['-g', '--global', '--allow-scripts=cc-ci'].includes(arg));
        return [
          ...(tarball.length === 1 && tarball[0] === `./cc-ci-${PACKAGE.version}.tgz`
            ? []
            : [`npm install ${tarball.join(' ')}: not ./cc-ci-${PACKAGE.version}.tgz`]),
          ...flags.map((flag) => `npm install ${flag}: a flag the docs are not expected to use`),
        ];
      }
      return [`npm ${verb}: not a command the docs are expected to use`];
    }
    case 'npx':
      return args[0] && existsSync(join(ROOT, 'node_modules', '.bin', args[0]))
        ? []
        : [`npx ${args[0]}: not installed in node_modules/.bin`];
    case 'node':
      if (args[0] === '--version' || args.includes('-e')) return [];
      return [`node ${args.join(' ')}: not a node command this checker knows`];
    case 'systemctl':
    case 'journalctl': {
      // Not run here (no systemd as pid 1 in CI): every cc-ci unit named must be one systemd/ ships.
      const unknown = args.filter((arg) => /^cc-ci-[\w-]+\.(service|timer)$/.test(arg) && !existsSync(join(ROOT, 'systemd', arg)));
      return unknown.map((unit) => `${program}: no systemd/${unit}`);
    }
    case 'lslocks':
    case 'ps':
    case 'cat':
    case 'grep':
    case 'uptime':
    case 'nproc':
      return spawnSync('sh', ['-c', `command -v ${program}`]).status === 0 ? [] : [`${program} is not installed`];
    default:
      throw new Error(
        `tests/docs/commands.test.ts does not know the program ${JSON.stringify(program)} (in: ${words.join(' ')}): add a check for it`,
      );
  }
}

/** Whether every simple command of a line may be run in the world. */
function runnable(line: string): boolean {
  return simpleCommands(line).every((command) => {
    const words = command.words;
    if (words.length === 0) return Object.keys(command.env).every((name) => name === 'pid');
    if (Object.keys(command.env).length) return false;
    const cli = cliArgs(words);
    if (cli) return safeCli(cli);
    if (words[0] === 'node') return words[1] === '--version' || (words[1] === '--input-type=module' && words[2] === '-e');
    return ['lslocks', 'ps', 'cat', 'grep', 'uptime', 'nproc'].includes(words[0]!);
  });
}

// ---------------------------------------------------------------------------------------------
// Output shapes.

const AGE = /^\d+[smhd](\d\d[smh])?$/;

interface LocksRow {
  domain: string;
  state: string;
  age: string;
  pid: string;
  command: string;
}

function parseLocksTable(lines: string[]): { header: string; rows: LocksRow[]; summary: string } {
  const [header, ...rest] = lines;
  const blank = rest.indexOf('');
  const rows = rest.slice(0, blank).map((line) => {
    const [domain, state, age, pid, ...command] = line.split(/ {2,}/);
    return { domain: domain!, state: state!, age: age!, pid: pid!, command: command.join('  ') };
  });
  return { header: header!, rows, summary: rest.slice(blank + 1).join('\n') };
}

function ageMs(age: string): number {
  const units: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  let total = 0;
  for (const [, n, unit] of age.matchAll(/(\d+)([smhd])/g)) total += Number(n) * units[unit!]!;
  return total;
}

/** A documented `cc-ci locks` table: the formatter reproduces it, and the real one has the same shape. */
async function checkLocksTable(documented: string[]): Promise<void> {
  const doc = parseLocksTable(documented);
  const dir = /lockfiles? in (\S+):/.exec(doc.summary)?.[1] ?? '/run/lock';
  const infos: AppLockInfo[] = doc.rows.map((row) => ({
    domain: row.domain,
    path: `${dir}/cc-ci-app-${row.domain}.lock`,
    state: row.state as 'held' | 'free',
    ageMs: ageMs(row.age),
    holder: row.pid === '-' ? null : { pid: Number(row.pid), command: row.command },
  }));
  expect(formatLocks(infos, dir), 'the documented table is what formatLocks prints for its rows').toBe(documented.join('\n'));
  for (const row of doc.rows) {
    expect(row.age, `age ${row.age}`).toMatch(AGE);
    expect(row.state === 'held', `${row.domain}: a pid exactly when held`).toBe(/^\d+$/.test(row.pid));
  }
  const real = await cc(['locks']);
  expect(real.code).toBe(0);
  const mine = parseLocksTable(real.stdout.split('\n'));
  expect(mine.header.split(/\s+/)).toEqual(doc.header.split(/\s+/));
  expect(mine.rows.map((row) => [row.domain, row.state])).toEqual(world.locks);
  for (const row of mine.rows) expect(row.age).toMatch(AGE);
  const held = world.locks.filter(([, state]) => state === 'held').length;
  expect(mine.summary.replace(world.host.locks, dir)).toBe(
    `${world.locks.length} lockfiles in ${dir}: ${held} held, ${world.locks.length - held} free`,
  );
}

function keysOf(value: unknown, into = new Set<string>()): Set<string> {
  if (Array.isArray(value)) for (const item of value) keysOf(item, into);
  else if (value && typeof value === 'object') {
    for (const [key, inner] of Object.entries(value)) {
      into.add(key);
      keysOf(inner, into);
    }
  }
  return into;
}

/** Documented JSON (parsed when complete; else its "keys"): the real output has the same keys. */
function checkJsonShape(documented: string[], real: unknown): void {
  const text = documented.join('\n');
  let docKeys: Set<string>;
  try {
    docKeys = keysOf(JSON.parse(text));
  } catch {
    docKeys = new Set([...text.matchAll(/"([A-Za-z]\w*)":/g)].map((match) => match[1]!));
  }
  const realKeys = keysOf(real);
  expect(
    [...docKeys].filter((key) => !realKeys.has(key)),
    'documented keys the real output lacks',
  ).toEqual([]);
}

const JANITOR_HEAD =
  /^janitor( \(dry run: nothing changed\))?: \d+ (reaped|to reap), \d+ live( \(\d+ long-held\))?, \d+ skipped, \d+ (tidied|to tidy) — lock dir \S+$/;
const JANITOR_ROW = /^ {2}(reaped|would reap|live|skipped|tidied|would tidy) +[a-z0-9.-]+( {2}.*)?$|^ {2}…$/;
const JANITOR_LOG = /^( {3}janitor: |!! janitor: |== teardown: | {2}\$ abra | {2}\[abra\] | {2}teardown )/;

function checkJanitorOutput(documented: string[], args: string[], real: { stdout: string; stderr: string }): void {
  const json = args.includes('--json');
  if (json) {
    checkJsonShape(
      documented.filter((line) => !JANITOR_LOG.test(line)),
      JSON.parse(real.stdout) as JanitorReport,
    );
    return;
  }
  for (const line of documented) {
    expect(
      JANITOR_HEAD.test(line) || JANITOR_ROW.test(line) || JANITOR_LOG.test(line),
      `documented janitor line has no known shape: ${line}`,
    ).toBe(true);
  }
  const out = real.stdout.split('\n');
  expect(out[0]).toMatch(JANITOR_HEAD);
  for (const line of out.slice(1)) expect(line).toMatch(JANITOR_ROW);
  for (const line of real.stderr.split('\n').filter(Boolean)) expect(line).toMatch(JANITOR_LOG);
}

function checkLslocks(documented: string[], output: string): void {
  const header = (lines: string[]) =>
    lines
      .find((line) => line.includes('COMMAND'))!
      .trim()
      .split(/\s+/);
  expect(header(output.split('\n'))).toEqual(header(documented));
  const row = /^\S+\s+\d+\s+FLOCK\s+(READ|WRITE)\*?\s+(\d+\s+)?\S+cc-ci-app-\S+\.lock( \(deleted\))?$/;
  for (const line of documented.filter((l) => !l.includes('COMMAND'))) expect(line, 'documented lslocks row').toMatch(row);
  const ours = output.split('\n').filter((l) => l.includes(world.host.locks));
  expect(ours.length, 'the live run of the world in lslocks').toBeGreaterThan(0);
  for (const line of ours) expect(line, 'real lslocks row').toMatch(row);
}

// ---------------------------------------------------------------------------------------------

const files = docFiles();
const shellBlocks = files.flatMap((file) => blocks(file)).filter((block) => SHELL_LANGS.has(block.lang));
const consoleBlocks = files.flatMap((file) => blocks(file)).filter((block) => block.lang === 'console');
const where = (block: Block): string => `${block.file}:${block.line}`;

describe('doc command blocks', () => {
  beforeAll(async () => {
    world = await makeWorld();
    return async () => {
      await cleanup();
      delete process.env.CCCI_APP_LOCK_DIR;
    };
  });

  it('finds the blocks it is meant to check', () => {
    expect(files).toContain('README.md');
    expect(shellBlocks.length).toBeGreaterThan(3);
    expect(consoleBlocks.length).toBeGreaterThan(3);
  });

  describe.each(shellBlocks.map((block) => [where(block), block] as const))('%s', (_name, block) => {
    it('parses with bash -n, and has no <placeholder> that a paste would turn into a redirection', () => {
      const parsed = spawnSync('bash', ['-n'], { input: block.text, encoding: 'utf8' });
      expect(parsed.stderr, where(block)).toBe('');
      expect(parsed.status).toBe(0);
      for (const line of shellLines(block.text)) {
        const unquoted = line.replace(/'[^']*'|"[^"]*"/g, '');
        expect(unquoted, `${where(block)}: ${line}`).not.toMatch(/<[a-z][\w -]*>/i);
      }
    });

    it('every command checks out; the safe ones run and succeed', () => {
      for (const line of shellLines(block.text)) {
        const problems = simpleCommands(line).flatMap((command) => checkCommand(command, 'static'));
        expect(problems, `${where(block)}: ${line}`).toEqual([]);
        if (runnable(line)) {
          const result = shell(line.replace(/\s#.*$/, ''));
          // `cat /proc/<pid>/stack` needs CAP_SYS_ADMIN; its failure is documented (root only).
          if (!/^cat \S*\/stack/.test(line)) expect(result.status, `${where(block)}: ${line}\n${result.output}`).toBe(0);
        }
      }
    });
  });

  describe.each(consoleBlocks.map((block) => [where(block), block] as const))('%s', (_name, block) => {
    it('every $ command checks out, runs where safe, and its documented output has the real shape', async () => {
      for (const { command, output } of consoleCommands(block.text)) {
        const simple = simpleCommands(command);
        const problems = simple.flatMap((part) => checkCommand(part, 'static'));
        expect(problems, `${where(block)}: $ ${command}`).toEqual([]);
        if (!runnable(command)) continue;
        const [first] = simple;
        const cli = cliArgs(first!.words);
        if (cli && simple.length === 1) {
          const real = await cc(cli);
          expect(real.code, `${where(block)}: $ ${command}\n${real.stderr}`).toBe(0);
          if (output.length === 0) continue;
          if (cli.includes('--help')) expect(real.stdout, `${where(block)}: $ ${command}`).toBe(output.join('\n'));
          else if (cli[0] === 'locks' && cli.includes('--json')) checkJsonShape(output, JSON.parse(real.stdout));
          else if (cli[0] === 'locks') await checkLocksTable(output);
          else if (cli[0] === 'janitor') checkJanitorOutput(output, cli, real);
          continue;
        }
        const result = shell(command);
        expect(result.status, `${where(block)}: $ ${command}\n${result.output}`).toBe(0);
        if (first!.words[0] === 'lslocks' && output.length) checkLslocks(output, result.output);
      }
    });
  });
});

describe('links and paths in the docs', () => {
  it.each(files)('%s: every relative link resolves, anchors included', (file) => {
    const broken: string[] = [];
    for (const link of links(file)) {
      const [path, anchor] = link.target.split('#') as [string, string | undefined];
      const target = path === '' ? file : normalize(join(dirname(file), path));
      if (!existsSync(join(ROOT, target))) {
        broken.push(`${link.target} (line ${link.line}): ${target} does not exist`);
        continue;
      }
      if (anchor !== undefined && target.endsWith('.md') && !headings(target).has(anchor)) {
        broken.push(`${link.target} (line ${link.line}): no heading #${anchor} in ${target}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it.each(files)('%s: every repository path named in backticks exists', (file) => {
    const top = ['lib/', 'runner/', 'tests/', 'docs/', 'bench/', 'native/', '.ci/', 'dist/'];
    const single = ['package.json', 'package-lock.json', 'binding.gyp', '.drone.yml', 'tsconfig.json', 'vitest.config.ts', 'README.md'];
    const missing: string[] = [];
    for (const match of prose(file).matchAll(/`([^`\s]+)`/g)) {
      const path = match[1]!.replace(/[.,:;)]+$/, '');
      if (/[<>*$…{}]/.test(path)) continue; // a pattern, not a path
      if (!top.some((prefix) => path.startsWith(prefix)) && !single.includes(path)) continue;
      // A source module may be named by its compiled name (lib/lifetime.js for lib/lifetime.ts).
      const source = /^(lib|runner)\/.*\.js$/.test(path) ? path.replace(/\.js$/, '.ts') : path;
      if (!existsSync(join(ROOT, source))) missing.push(path);
    }
    expect(missing).toEqual([]);
  });

  it('every `cc-ci …` written in the prose names a real command and real flags', () => {
    const problems: string[] = [];
    // docs/inputs.md shows wrong commands on purpose, and messages (`cc-ci run: …`) are not commands.
    for (const file of files.filter((f) => f !== 'docs/inputs.md')) {
      for (const match of prose(file).matchAll(/`(cc-ci [a-z][^`:]*)`/g)) {
        const words = match[1]!
          .replace(/[[\]]/g, ' ')
          .split(/\s+/)
          .filter((word) => word && !/^<.*>$|^<|>$|\.\.\.$/.test(word));
        const args = words.slice(1).filter((word) => /^[a-z-]+$/.test(word) || word.startsWith('-'));
        if (args.length === 1 || args.includes('--help')) args.splice(1); // a command named in passing
        if (args[0] === 'step' && args.length > 1 && !args.includes('--')) args.push('--');
        problems.push(...checkCli(args, {}, false).map((problem) => `${file}: \`${match[1]}\`: ${problem}`));
      }
    }
    expect(problems).toEqual([]);
  });

  it('the bench names and npm scripts the docs mention exist', () => {
    for (const file of files) {
      for (const match of prose(file).matchAll(/`npm run (\w+)((?: [a-z]+)*)`/g)) {
        expect(PACKAGE.scripts[match[1]!], `${file}: npm run ${match[1]}`).toBeTruthy();
        for (const bench of match[2]!.trim().split(' ').filter(Boolean)) {
          if (match[1] === 'bench') expect(existsSync(join(ROOT, 'bench', `${bench}.bench.ts`)), `${file}: bench ${bench}`).toBe(true);
        }
      }
    }
  });
});
