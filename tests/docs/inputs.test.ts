// docs/inputs.md is true: every row of its table is reproduced here, against the built CLI on a
// fake host (tests/support/fake-host.ts) or against the library, and the message and exit code the
// code gives must be the ones the row shows. A row without a case, or a case without a row, fails.
//
// Paths in the output are mapped back to the production defaults the doc shows (the fake host's
// lock dir -> /run/lock, runs dir -> /var/lib/cc-ci-runs, HOME -> /root). In a documented message,
// `<pid>` stands for a process id and `…` for any text.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

import { recipeDir } from '../../lib/abra-dir.js';
import { janitor } from '../../lib/janitor.js';
import { installLifetimeGuards } from '../../lib/lifetime.js';
import { lockPath, parseProcLocks } from '../../lib/lockfiles.js';
import { appDomain } from '../../lib/naming.js';
import { LOCK_EX, flock, flockWait, openLockFile } from '../../lib/native.js';
import { runStatePath } from '../../lib/run-state.js';
import { parseRunConfig } from '../../runner/run/config.js';
import { domainsOfServices, parseAbraAppLs } from '../../runner/host/discovery.js';
import { fakeHost, type FakeHost } from '../support/fake-host.js';
import { CLI, ROOT, tempDir, useHelpers } from '../support/processes.js';

useHelpers();

const DOC = join(ROOT, 'docs', 'inputs.md');
const RECIPE = 'keycloak';
const DOMAIN = appDomain(RECIPE, '0', ''); // keyc-26243b.ci.commoninternet.net under the default base
const LOCKFILE = `cc-ci-app-${DOMAIN}.lock`;
const IS_ROOT = process.geteuid?.() === 0;
const HAS_SETPRIV = spawnSync('setpriv', ['--version']).status === 0;

interface Row {
  key: string;
  message: string | null;
  exit: string;
  line: number;
}

/** The table rows of docs/inputs.md, keyed by their `input | bad value` cells. */
function docRows(): Map<string, Row> {
  const rows = new Map<string, Row>();
  readFileSync(DOC, 'utf8')
    .split('\n')
    .forEach((text, index) => {
      if (!text.startsWith('| ') || text.startsWith('| boundary') || text.startsWith('|---')) return;
      const cells = text
        .split(/(?<!\\)\|/)
        .slice(1, -1)
        .map((cell) => cell.trim());
      if (cells.length !== 5) throw new Error(`docs/inputs.md:${index + 1}: expected 5 cells, got ${cells.length}`);
      const [, input, bad, message, exit] = cells as [string, string, string, string, string];
      // A row that starts `*not …*` documents a non-error; otherwise its first code span is the message.
      const span = message.startsWith('*not') ? null : /(``?)\s?(.*?)\s?\1(?!`)/.exec(message);
      rows.set(`${input} | ${bad}`, { key: `${input} | ${bad}`, message: span ? span[2]! : null, exit, line: index + 1 });
    });
  return rows;
}

/** A documented message as a regex over one whole output line. */
function messagePattern(message: string): RegExp {
  const parts = message
    .split(/(<pid>|…)/)
    .map((part) => (part === '<pid>' ? '\\d+' : part === '…' ? '.*?' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  return new RegExp(`^${parts.join('')}$`);
}

interface Outcome {
  lines: string[];
  /** The exit code; 'throws' for a library call; 'holds' / 'broken' for a documented non-error. */
  exit: number | 'throws' | 'holds' | 'broken' | null;
}

interface CliOptions {
  env?: NodeJS.ProcessEnv;
  unset?: string[];
  /** Only these programs on PATH (fake abra/docker, or real ones by name); default: everything. */
  path?: string[];
  setup?: (host: FakeHost) => void;
  /** Called once the command has exited. */
  after?: (host: FakeHost) => void;
  /** More path mappings for the output, applied first; `@` stands for the fake host's root (also in env values and args). */
  map?: [string, string][];
}

async function cli(args: string[], options: CliOptions = {}): Promise<Outcome> {
  const host = fakeHost([RECIPE]);
  const env: NodeJS.ProcessEnv = {
    ...host.env,
    RECIPE,
    CCCI_RUN_ID: '1234',
    STAGES: 'install',
    CCCI_CONVERGE_TIMEOUT_SECONDS: '2',
    ...options.env,
  };
  for (const name of options.unset ?? []) delete env[name];
  for (const [name, value] of Object.entries(env)) if (value?.startsWith('@/')) env[name] = host.root + value.slice(1);
  if (options.path) {
    const bin = join(host.root, 'only-bin');
    mkdirSync(bin);
    for (const tool of options.path) {
      const fake = join(host.bin, tool);
      symlinkSync(existsSync(fake) ? fake : execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), join(bin, tool));
    }
    env.PATH = bin;
  }
  options.setup?.(host);
  const result = await execa(process.execPath, [CLI, ...args.map((arg) => (arg.startsWith('@/') ? host.root + arg.slice(1) : arg))], {
    env,
    extendEnv: false,
    reject: false,
    all: true,
    timeout: 60_000,
    cwd: host.root,
  });
  options.after?.(host);
  const mappings: [string, string][] = [
    ...(options.map ?? []).map(([from, to]) => [from.replace(/^@/, host.root), to] as [string, string]),
    [host.locks, '/run/lock'],
    [host.runs, '/var/lib/cc-ci-runs'],
    [host.home, '/root'],
  ];
  const lines = (result.all ?? '').split('\n').map((line) => mappings.reduce((text, [from, to]) => text.replaceAll(from, to), line));
  return { lines, exit: result.exitCode ?? null };
}

function thrown(fn: () => unknown): Outcome {
  try {
    fn();
  } catch (error) {
    return { lines: [(error as Error).message], exit: 'throws' };
  }
  return { lines: ['(did not throw)'], exit: null };
}

async function rejected(fn: () => Promise<unknown>): Promise<Outcome> {
  try {
    await fn();
  } catch (error) {
    return { lines: [(error as Error).message], exit: 'throws' };
  }
  return { lines: ['(did not reject)'], exit: null };
}

/** For a row that documents a non-error: the check returns true when the behaviour is as described. */
function holds(check: () => boolean): Outcome {
  return { lines: [], exit: check() ? 'holds' : 'broken' };
}

const plant = (what: 'dir' | 'fifo' | 'symlink' | 'foreign') => (host: FakeHost) => {
  const path = join(host.locks, LOCKFILE);
  if (what === 'dir') mkdirSync(path);
  if (what === 'fifo') execFileSync('mkfifo', [path]);
  if (what === 'symlink') symlinkSync('/etc/hostname', path);
  if (what === 'foreign') {
    writeFileSync(path, '');
    chownSync(path, 65534, 65534);
  }
};
const listApp = (host: FakeHost): void => host.apps({ default: { apps: [{ appName: DOMAIN, domain: DOMAIN }] } });
const longBase = ['a', 'b', 'c', 'd'].map((c) => c.repeat(62)).join('.');

const CASES: Record<string, () => Promise<Outcome> | Outcome> = {
  'command | none (`cc-ci`)': () => cli([]),
  'command | `cc-ci deploy`': () => cli(['deploy']),
  'option | `cc-ci run --bogus`': () => cli(['run', '--bogus']),
  'option | `cc-ci run --recipe` (no value)': () => cli(['run', '--recipe']),
  'argument | `cc-ci janitor now`': () => cli(['janitor', 'now']),
  'option | `cc-ci locks --all`': () => cli(['locks', '--all']),
  '`cc-ci units --dir` | `system` (relative)': () => cli(['units', '--dir', 'system']),
  '`cc-ci units --dir` | a symlink': () =>
    cli(['units', '--dir', '@/system-link'], {
      setup: (host) => symlinkSync(host.root, join(host.root, 'system-link')),
      map: [['@/system-link', '/etc/systemd/system']],
    }),
  '`cc-ci units --dir` | writable by others': () =>
    cli(['units', '--dir', '@/system'], {
      setup: (host) => {
        mkdirSync(join(host.root, 'system'));
        chmodSync(join(host.root, 'system'), 0o777);
      },
      map: [['@/system', '/etc/systemd/system']],
    }),
  '`cc-ci units --environment-file` | missing': () =>
    cli(['units', '--dir', '@/units', '--environment-file', '@/env'], {
      setup: (host) => mkdirSync(join(host.root, 'units')),
      map: [['@/env', '/etc/cc-ci/env']],
    }),
  '`cc-ci units --environment-file` | writable by others': () =>
    cli(['units', '--dir', '@/units', '--environment-file', '@/env'], {
      setup: (host) => {
        mkdirSync(join(host.root, 'units'));
        writeFileSync(join(host.root, 'env'), 'HOME=/root\n');
        chmodSync(join(host.root, 'env'), 0o666);
      },
      map: [['@/env', '/etc/cc-ci/env']],
    }),
  '`cc-ci step` command | none (`cc-ci step`)': () => cli(['step']),
  '`cc-ci step` option | `cc-ci step --foo -- true`': () => cli(['step', '--foo', '--', 'true']),
  '`cc-ci step` command | `cc-ci step -- no-such-command`': () => cli(['step', '--', 'no-such-command']),
  '`cc-ci step` command | `cc-ci step -- /etc/passwd` (not executable)': () => cli(['step', '--', '/etc/passwd']),

  '`RECIPE` / `--recipe` | unset': () => cli(['run'], { unset: ['RECIPE'] }),
  '`RECIPE` / `--recipe` | `../etc` (path characters)': () => cli(['run'], { env: { RECIPE: '../etc' } }),
  '`RECIPE` / `--recipe` | `Keycloak` (upper case)': () => cli(['run', '--recipe', 'Keycloak']),
  '`REF` / `--ref` | `main..dev`': () => cli(['run'], { env: { REF: 'main..dev' } }),
  '`REF` / `--ref` | `--upload-pack=x` (an option for git)': () => cli(['run', '--ref=--upload-pack=x']),
  '`PR` / `--pr` | `abc`': () => cli(['run'], { env: { PR: 'abc' } }),
  '`PR` / `--pr` | `-1`': () => cli(['run', '--pr=-1']),
  '`SRC` / `--src` | `coop-cloud` (no repository)': () => cli(['run'], { env: { SRC: 'coop-cloud' } }),
  '`SRC` / `--src` | `../etc`': () => cli(['run', '--src', '../etc']),
  '`REF` and `SRC` | only one of the two set': () =>
    holds(() => {
      const one = parseRunConfig([], { RECIPE, REF: 'main' });
      const other = parseRunConfig([], { RECIPE, SRC: 'coop-cloud/keycloak' });
      return one.ref === 'main' && one.src === null && other.src === 'coop-cloud/keycloak' && other.ref === null;
    }),
  '`STAGES` / `--stages` | `install,deploy`': () => cli(['run'], { env: { STAGES: 'install,deploy' } }),
  '`STAGES` / `--stages` | `,` (none)': () => cli(['run', '--stages', ',']),
  '`CCCI_QUICK` | `yes`': () => cli(['run'], { env: { CCCI_QUICK: 'yes' } }),
  '`CCCI_SERVER` | `../other`': () => cli(['run'], { env: { CCCI_SERVER: '../other' } }),
  '`CCCI_CONVERGE_TIMEOUT_SECONDS` | `10m`': () => cli(['run'], { env: { CCCI_CONVERGE_TIMEOUT_SECONDS: '10m' } }),
  '`CCCI_LOCK_BACKEND` | `consul`': () => cli(['run'], { env: { CCCI_LOCK_BACKEND: 'consul' } }),
  '`CCCI_ETCD_ENDPOINTS` | unset, with `CCCI_LOCK_BACKEND=etcd`': () => cli(['run'], { env: { CCCI_LOCK_BACKEND: 'etcd' } }),
  '`CCCI_ETCD_ABORT_SECONDS` | `30` (with the default lease of 30 s)': () =>
    cli(['run'], { env: { CCCI_LOCK_BACKEND: 'etcd', CCCI_ETCD_ENDPOINTS: 'http://127.0.0.1:2379', CCCI_ETCD_ABORT_SECONDS: '30' } }),
  '`CCCI_GIT_BASE` | `git.autonomic.zone` (no scheme)': () => cli(['run'], { env: { CCCI_GIT_BASE: 'git.autonomic.zone' } }),
  '`CCCI_GIT_TOKEN` | a value with a line break': () => cli(['run'], { env: { CCCI_GIT_TOKEN: 'secret\nX-Evil: 1' } }),
  '`CCCI_DEADLINE_SECONDS` | `1h`': () => cli(['run'], { env: { CCCI_DEADLINE_SECONDS: '1h' } }),
  '`CCCI_TEARDOWN_BUDGET_SECONDS` | `0`': () => cli(['run'], { env: { CCCI_TEARDOWN_BUDGET_SECONDS: '0' } }),
  '`CCCI_EXPECTED_PPID` | `1`': () => cli(['run'], { env: { CCCI_EXPECTED_PPID: '1' } }),
  '`CCCI_EXPECTED_PPID` | a pid that is not the parent': () =>
    cli(['run'], { env: { CCCI_EXPECTED_PPID: String(process.pid === 2 ? 3 : 2) } }),
  '`CCCI_BASE_DOMAIN` | `CI.Example.org`': () => cli(['run'], { env: { CCCI_BASE_DOMAIN: 'CI.Example.org' } }),
  '`CCCI_BASE_DOMAIN` | `ci/example.org`': () => cli(['run'], { env: { CCCI_BASE_DOMAIN: 'ci/example.org' } }),
  '`CCCI_BASE_DOMAIN` | so long that the app domain passes 253 characters': () => cli(['run'], { env: { CCCI_BASE_DOMAIN: longBase } }),
  '`CCCI_RUN_ID` | `../1234`': () => cli(['run'], { env: { CCCI_RUN_ID: '../1234' } }),
  '`DRONE_BUILD_NUMBER` (no `CCCI_RUN_ID`) | `12 34`': () => cli(['run'], { unset: ['CCCI_RUN_ID'], env: { DRONE_BUILD_NUMBER: '12 34' } }),
  '`CCCI_RUNS_DIR` | `runs` (relative)': () => cli(['run'], { env: { CCCI_RUNS_DIR: 'runs' } }),
  '`CCCI_RUNS_DIR` | `/dev/null/runs` (cannot be created)': () => cli(['run'], { env: { CCCI_RUNS_DIR: '/dev/null/runs' } }),
  '`CCCI_RUNS_DIR` | writable by others, no sticky bit': () => cli(['run'], { setup: (host) => chmodSync(host.runs, 0o777) }),
  '`<runs dir>/<run id>` | a symlink': () =>
    cli(['run'], {
      setup: (host) => {
        mkdirSync(join(host.root, 'elsewhere'));
        symlinkSync(join(host.root, 'elsewhere'), join(host.runs, '1234'));
      },
    }),
  '`<runs dir>/<run id>` | owned by another user': () =>
    cli(['run'], {
      setup: (host) => {
        mkdirSync(join(host.runs, '1234'), { mode: 0o700 });
        chownSync(join(host.runs, '1234'), 65534, 65534);
      },
    }),
  '`CCCI_APP_LOCK_DIR` | `locks` (relative)': () => cli(['run'], { env: { CCCI_APP_LOCK_DIR: 'locks' } }),
  '`CCCI_SKIP_FETCH` | `1` with nothing staged': () =>
    cli(['run'], { setup: (host) => rmSync(join(host.home, '.abra', 'recipes', RECIPE), { recursive: true }) }),
  '`CCCI_WARM_APPS` / `--apps` | unset': () => cli(['warm-reconcile']),
  '`CCCI_WARM_APPS` / `--apps` | `Keycloak.example.org`': () => cli(['warm-reconcile', '--apps', 'Keycloak.example.org']),
  '`CCCI_SERVER` (warm-reconcile) | `../other`': () => cli(['warm-reconcile', '--apps', DOMAIN], { env: { CCCI_SERVER: '../other' } }),
  '`CCCI_DEADLINE_SECONDS` (janitor) | `1h`': () => cli(['janitor'], { env: { CCCI_DEADLINE_SECONDS: '1h' } }),
  '`CCCI_BASE_DOMAIN` (janitor) | `CI.Example.org`': () => cli(['janitor'], { env: { CCCI_BASE_DOMAIN: 'CI.Example.org' } }),
  '`CCCI_SERVER` (janitor) | `../other`': () => cli(['janitor'], { env: { CCCI_SERVER: '../other' }, setup: listApp }),

  '`abra` | missing (`cc-ci janitor`)': () => cli(['janitor'], { path: ['docker', 'cat', 'grep'] }),
  '`abra` | missing (`cc-ci run`)': () => cli(['run'], { path: ['docker', 'git', 'cat', 'grep'], unset: ['CCCI_SKIP_FETCH'] }),
  '`docker` | missing (`cc-ci janitor`)': () => cli(['janitor'], { path: ['abra', 'cat', 'grep'] }),
  '`docker` | missing (`cc-ci run`)': () => cli(['run'], { path: ['abra', 'git', 'cat', 'grep'] }),
  '`git` | missing (`cc-ci run`)': () => cli(['run'], { path: ['abra', 'docker', 'cat', 'grep'] }),

  'not JSON | `WARN no servers configured`': () => cli(['janitor'], { setup: (host) => host.apps('WARN no servers configured\n') }),
  'wrong shape | `{"default": {"apps": "none"}}`': () => cli(['janitor'], { setup: (host) => host.apps('{"default": {"apps": "none"}}') }),
  'an app without a name | `[{"recipe": "keycloak"}]`': () => cli(['janitor'], { setup: (host) => host.apps('[{"recipe": "keycloak"}]') }),
  'not an object | `"keycloak"`': () => cli(['janitor'], { setup: (host) => host.apps('"keycloak"') }),
  'not JSON, during `cc-ci run` | `WARN no servers configured`': () =>
    cli(['run'], { setup: (host) => host.apps('WARN no servers configured\n') }),
  'empty, `{}` or `null` | —': () => holds(() => ['', '{}', 'null', ' \n'].every((text) => parseAbraAppLs(text).length === 0)),
  'exit status | `docker service ls` fails (`cc-ci janitor`)': () =>
    cli(['janitor'], {
      setup: (host) =>
        writeFileSync(
          join(host.bin, 'docker'),
          '#!/bin/sh\necho "Error response from daemon: This node is not a swarm manager." >&2\nexit 1\n',
        ),
    }),
  '`docker service ls` replicas | `keyc-26243b_ci_commoninternet_net_app 1 of 1`': () =>
    cli(['run'], { setup: (host) => writeFileSync(join(host.root, 'replicas'), 'keyc-26243b_ci_commoninternet_net_app 1 of 1\n') }),
  "service names | a name that is not a run app's stack": () =>
    holds(() => domainsOfServices('warm-keycloak_ci_commoninternet_net_app\nportainer_agent\nkeyc-26243b_other_org_app\n').length === 0),
  'lines | a line that is not a granted flock lock': () =>
    holds(
      () =>
        parseProcLocks('garbage\n1: -> FLOCK  ADVISORY  WRITE 42 fd:00:7 0 EOF\n2: POSIX  ADVISORY  WRITE 43 fd:00:8 0 EOF\n').size === 0,
    ),

  '`CCCI_APP_LOCK_DIR` | missing, its parent there (`cc-ci run`)': async () => {
    let mode = 0;
    await cli(['run'], {
      setup: (host) => rmSync(host.locks, { recursive: true }),
      after: (host) => (mode = existsSync(host.locks) ? statSync(host.locks).mode & 0o7777 : -1),
    });
    return holds(() => mode === 0o755);
  },
  '`CCCI_APP_LOCK_DIR` | missing, and its parent too (`cc-ci run`)': () =>
    cli(['run'], { env: { CCCI_APP_LOCK_DIR: '@/srv/ci/locks' }, map: [['@/srv', '/srv']] }),
  '`CCCI_APP_LOCK_DIR` | a file (`cc-ci run`)': () =>
    cli(['run'], {
      setup: (host) => {
        rmSync(host.locks, { recursive: true });
        writeFileSync(host.locks, '');
      },
    }),
  '`CCCI_APP_LOCK_DIR` | writable by others, no sticky bit (`cc-ci run`)': () =>
    cli(['run'], { setup: (host) => chmodSync(host.locks, 0o777) }),
  '`CCCI_LEGACY_LOCK_DIR` | missing (`cc-ci run`)': () =>
    cli(['run'], {
      env: { CCCI_LEGACY_LOCK_DIR: '@/legacy-lock' },
      map: [
        ['@/legacy-lock', '/run/lock'],
        ['@/locks', '/run/lock/cc-ci'],
      ],
    }),
  '`CCCI_APP_LOCK_DIR` | missing (`cc-ci janitor`)': () => cli(['janitor'], { setup: (host) => rmSync(host.locks, { recursive: true }) }),
  '`CCCI_APP_LOCK_DIR` | missing (`cc-ci locks`)': () => cli(['locks'], { setup: (host) => rmSync(host.locks, { recursive: true }) }),
  '`CCCI_APP_LOCK_DIR` | a file (`cc-ci locks`)': () =>
    cli(['locks'], {
      setup: (host) => {
        rmSync(host.locks, { recursive: true });
        writeFileSync(host.locks, '');
      },
    }),
  "`CCCI_APP_LOCK_DIR` | not writable by the runner's user (`acquireAppLock`)": () => notWritable(),
  '`<lock dir>/cc-ci-app-<domain>.lock` | a directory (`cc-ci run`)': () => cli(['run'], { setup: plant('dir') }),
  '`<lock dir>/cc-ci-app-<domain>.lock` | a FIFO (`cc-ci run`)': () => cli(['run'], { setup: plant('fifo') }),
  '`<lock dir>/cc-ci-app-<domain>.lock` | a symlink (`cc-ci run`)': () => cli(['run'], { setup: plant('symlink') }),
  '`<lock dir>/cc-ci-app-<domain>.lock` | owned by another user (`cc-ci run`)': () => cli(['run'], { setup: plant('foreign') }),
  '`<lock dir>/cc-ci-app-<domain>.lock` | a directory (`cc-ci janitor`, app listed by abra)': () =>
    cli(['janitor'], {
      setup: (host) => {
        plant('dir')(host);
        listApp(host);
      },
    }),
  '`<lock dir>/cc-ci-app-<domain>.lock` | a FIFO (`cc-ci janitor`, no app behind it)': () => cli(['janitor'], { setup: plant('fifo') }),
  '`<lock dir>/cc-ci-app-<domain>.lock` | a symlink (`cc-ci locks`)': () => cli(['locks'], { setup: plant('symlink') }),
  '`<runs dir>/<run id>/abra/servers` | a symlink to elsewhere': () =>
    cli(['run'], {
      setup: (host) => {
        mkdirSync(join(host.runs, '1234', 'abra'), { recursive: true });
        symlinkSync('/tmp', join(host.runs, '1234', 'abra', 'servers'));
      },
    }),
  '`<runs dir>/<run id>/abra/servers` | a directory': () =>
    cli(['run'], { setup: (host) => mkdirSync(join(host.runs, '1234', 'abra', 'servers'), { recursive: true }) }),
  '`~/.abra` | cannot be created (`HOME=/dev/null`)': () => cli(['run'], { env: { HOME: '/dev/null' } }),

  'domain | `keyc/../x`': () => thrown(() => lockPath('keyc/../x')),
  'domain | empty': () => thrown(() => lockPath('')),
  'domain | 254 characters': () => thrown(() => lockPath('a'.repeat(254))),
  'domain | `keyc..example.org`': () => thrown(() => lockPath('keyc..example.org')),
  'domain | `Keyc-26243b.example.org`': () => thrown(() => lockPath('Keyc-26243b.example.org')),
  'domain | `-keyc.example.org`': () => thrown(() => lockPath('-keyc.example.org')),
  'recipe name (`recipeDir`, `appDomain`) | `../x`': () => thrown(() => recipeDir('../x')),
  'PR (`appDomain`) | `-1`': () => thrown(() => appDomain(RECIPE, -1, '')),
  'ref (`appDomain`) | `null`': () => thrown(() => appDomain(RECIPE, 1, null as unknown as string)),
  // An explicit run dir: the default, ensureRunDir(), would create one before the name is checked.
  'run-state name (`runStatePath`) | `../x`': () => thrown(() => runStatePath('../x', '/var/lib/cc-ci-runs/1234')),
  '`deadlineSeconds` (`installLifetimeGuards`, `janitor`) | `1.5`': async () => {
    const direct = thrown(() => installLifetimeGuards({ deadlineSeconds: 1.5 }));
    const viaJanitor = await rejected(() => janitor({ discover: () => [], teardown: () => {}, deadlineSeconds: 1.5 }));
    return direct.lines[0] === viaJanitor.lines[0] ? direct : viaJanitor;
  },
  '`expectedPpid` (`installLifetimeGuards`) | `1`': () => thrown(() => installLifetimeGuards({ expectedPpid: 1 })),
  'fd (`cc-ci/native`) | `-1`': () => thrown(() => flock(-1, LOCK_EX)),
  'flock operation (`flock`) | `LOCK_EX` without `LOCK_NB`': () => thrown(() => flock(0, LOCK_EX)),
  '`timeoutMs` (`flockWait`) | `-1`': () => thrown(() => void flockWait(0, LOCK_EX, { timeoutMs: -1 })),
  'path (`openLockFile`) | with a NUL byte': () => thrown(() => openLockFile('a\0b', false)),
};

/** The EACCES of a lock dir the caller cannot write: as root, through setpriv as nobody. */
async function notWritable(): Promise<Outcome> {
  const dir = tempDir('ccci-ro-locks-');
  chmodSync(dir, 0o755); // traversable, not writable, for anyone but root
  const script = `import { acquireAppLock } from ${JSON.stringify(join(ROOT, 'dist', 'lib', 'index.js'))};
try { await acquireAppLock(${JSON.stringify(DOMAIN)}); console.log('(acquired)'); } catch (error) { console.log(error.message); }`;
  const command = IS_ROOT ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath] : [process.execPath];
  if (!IS_ROOT) chmodSync(dir, 0o555);
  const result = await execa(command[0]!, [...command.slice(1), '--input-type=module', '-e', script], {
    env: { PATH: process.env.PATH, CCCI_APP_LOCK_DIR: dir },
    extendEnv: false,
    reject: false,
  });
  return { lines: [result.stdout.replaceAll(dir, '/run/lock')], exit: 'throws' };
}

describe('docs/inputs.md', () => {
  const rows = docRows();

  it('has a case here for every row, and a row for every case', () => {
    expect(
      [...rows.keys()].filter((key) => !(key in CASES)),
      'rows with no case in tests/docs/inputs.test.ts',
    ).toEqual([]);
    expect(
      Object.keys(CASES).filter((key) => !rows.has(key)),
      'cases with no row in docs/inputs.md',
    ).toEqual([]);
  });

  for (const [key, run] of Object.entries(CASES)) {
    const needs = /owned by another user/.test(key) ? IS_ROOT : /not writable/.test(key) ? !IS_ROOT || HAS_SETPRIV : true;
    it.skipIf(!needs)(key, { timeout: 90_000 }, async () => {
      const row = rows.get(key);
      if (!row) throw new Error(`no row "${key}" in docs/inputs.md`);
      const outcome = await run();
      const where = `docs/inputs.md:${row.line} (${key})\n--- output ---\n${outcome.lines.join('\n')}`;
      if (row.message === null) {
        // A documented non-error: the case checked the behaviour the row describes.
        expect(outcome.exit, where).toBe('holds');
        return;
      }
      expect(row.message, `${where}\nthe row has no message in a code span`).not.toBeNull();
      const pattern = messagePattern(row.message!);
      expect(
        outcome.lines.some((line) => pattern.test(line)),
        `${where}\n--- documented ---\n${row.message}`,
      ).toBe(true);
      const documentedExit = row.exit === 'throws' ? 'throws' : Number(/^\d+/.exec(row.exit)?.[0]);
      expect(outcome.exit, where).toBe(documentedExit);
    });
  }
});
