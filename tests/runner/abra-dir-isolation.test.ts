// Per-run ABRA_DIR (Python cases 17-19) and run-keyed state files (case 20).
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { abraDir, ensureRunDir, recipeDir, runId, setupRunAbraDir } from '../../lib/abra-dir.js';
import { createRunState, recordDeploy, removeRunState, removeStaleRunState, runStatePath } from '../../lib/run-state.js';
import { startHelper, tempDir, useHelpers } from '../support/processes.js';

const { lockDir } = useHelpers();
const saved = { ...process.env };

let home: string;
beforeEach(() => {
  home = tempDir('ccci-home-');
  process.env.HOME = home;
  process.env.CCCI_RUNS_DIR = join(home, 'runs');
  process.env.CCCI_RUN_ID = 'build-17';
  delete process.env.ABRA_DIR;
});
afterEach(() => {
  for (const key of ['HOME', 'CCCI_RUNS_DIR', 'CCCI_RUN_ID', 'ABRA_DIR']) {
    if (saved[key] === undefined) delete process.env[key];
    else process.env[key] = saved[key];
  }
});

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' },
  }).trim();
}

/** A bare repo `<base>/<src>.git` with branches one and two, each with its own VERSION. */
function makeRemote(base: string, src: string): void {
  const work = tempDir('ccci-recipe-src-');
  git(work, 'init', '-q', '-b', 'one');
  writeFileSync(join(work, 'VERSION'), 'one\n');
  git(work, 'add', '.');
  git(work, 'commit', '-qm', 'one');
  git(work, 'checkout', '-qb', 'two');
  writeFileSync(join(work, 'VERSION'), 'two\n');
  git(work, 'commit', '-qam', 'two');
  mkdirSync(join(base, src, '..'), { recursive: true });
  git(work, 'clone', '-q', '--bare', work, join(base, `${src}.git`));
}

describe('per-run ABRA_DIR', () => {
  it('is built with servers/ and catalogue/ linked to the canonical dir, a fresh recipes/, and exported', () => {
    const dir = setupRunAbraDir();
    expect(dir).toBe(join(home, 'runs', 'build-17', 'abra'));
    expect(process.env.ABRA_DIR).toBe(dir);
    expect(abraDir()).toBe(dir);
    expect(readlinkSync(join(dir, 'servers'))).toBe(join(home, '.abra', 'servers'));
    expect(readlinkSync(join(dir, 'catalogue'))).toBe(join(home, '.abra', 'catalogue'));
    expect(lstatSync(join(dir, 'recipes')).isDirectory()).toBe(true);
    expect(recipeDir('demo')).toBe(join(dir, 'recipes', 'demo'));
    expect(setupRunAbraDir()).toBe(dir); // idempotent
  });

  it('refuses a servers/ link that points elsewhere', () => {
    const dir = join(home, 'runs', 'build-17', 'abra');
    mkdirSync(dir, { recursive: true });
    symlinkSync('/tmp', join(dir, 'servers'));
    expect(() => setupRunAbraDir()).toThrow(/servers points to \/tmp, not .*refusing/);
    expect(process.env.ABRA_DIR).toBeUndefined();
  });

  it('gives hand runs a pid-suffixed id, and refuses a run id with path characters', () => {
    delete process.env.CCCI_RUN_ID;
    const drone = process.env.DRONE_BUILD_NUMBER;
    delete process.env.DRONE_BUILD_NUMBER;
    try {
      expect(runId()).toBe(`manual-${process.pid}`);
      process.env.CCCI_RUN_ID = '../etc';
      expect(() => runId()).toThrow(/run id/);
    } finally {
      if (drone !== undefined) process.env.DRONE_BUILD_NUMBER = drone;
    }
  });

  it('puts an .env written through servers/ in the canonical dir', () => {
    const dir = setupRunAbraDir();
    mkdirSync(join(dir, 'servers', 'default'), { recursive: true });
    writeFileSync(join(dir, 'servers', 'default', 'ab-123456.ci.example.env'), 'TYPE=demo\n');
    expect(readFileSync(join(home, '.abra', 'servers', 'default', 'ab-123456.ci.example.env'), 'utf8')).toBe('TYPE=demo\n');
  });

  it('lets two concurrent same-recipe fetches diverge, leaving the canonical clone untouched', async () => {
    const base = tempDir('ccci-git-');
    makeRemote(base, 'org/demo');
    const canonical = join(home, '.abra', 'recipes', 'demo');
    mkdirSync(canonical, { recursive: true });
    writeFileSync(join(canonical, 'VERSION'), 'canonical\n');

    const env = (id: string) => ({ env: { HOME: home, CCCI_RUNS_DIR: join(home, 'runs'), CCCI_RUN_ID: id } });
    const one = startHelper('fetch-recipe.mjs', ['demo', 'org/demo', 'one', base], env('run-a'));
    const two = startHelper('fetch-recipe.mjs', ['demo', 'org/demo', 'two', base], env('run-b'));
    const [a, b] = await Promise.all([one.waitFor('TREE', 30_000), two.waitFor('TREE', 30_000)]);
    expect(a).toContain(`${join(home, 'runs', 'run-a', 'abra', 'recipes', 'demo')} `);
    expect(a).toMatch(/VERSION one$/);
    expect(b).toContain(`${join(home, 'runs', 'run-b', 'abra', 'recipes', 'demo')} `);
    expect(b).toMatch(/VERSION two$/);
    expect(readFileSync(join(canonical, 'VERSION'), 'utf8')).toBe('canonical\n');
    expect(existsSync(join(canonical, '.git'))).toBe(false);
  });
});

describe('run-state files', () => {
  it('are keyed by run id and pid, never by domain, inside the run dir', () => {
    const path = runStatePath('deploys');
    expect(path).toBe(join(home, 'runs', 'build-17', `state-${process.pid}`, 'deploys'));
    expect(path).not.toContain('ci.example');
  });

  it('of a dead run are removed by the next one; a live run keeps its own', () => {
    const dir = ensureRunDir();
    const dead = execFileSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).trim();
    const deadDir = join(dir, `state-${dead}`);
    mkdirSync(deadDir);
    writeFileSync(join(deadDir, 'deploys'), '1');
    const live = createRunState(dir);
    expect(removeStaleRunState(dir)).toEqual([deadDir]);
    expect(existsSync(deadDir)).toBe(false);
    expect(readFileSync(live.deployCount, 'utf8')).toBe('0');
    removeRunState(live);
    expect(existsSync(live.dir)).toBe(false);
  });

  it('are written in a dir only this user can write to: a symlink planted in the shared temp dir is never followed', () => {
    // The old layout, <tmpdir>/ccci-deploys-<run id>-<pid>, let another local user plant a link
    // there and have a root run write "0" through it into any file.
    const victim = join(home, 'victim');
    writeFileSync(victim, 'precious\n');
    const planted = join(tmpdir(), `ccci-deploys-build-17-${process.pid}`);
    symlinkSync(victim, planted);
    try {
      const files = createRunState();
      recordDeploy(files);
      expect(readFileSync(victim, 'utf8')).toBe('precious\n');
      expect(files.dir.startsWith(join(home, 'runs', 'build-17'))).toBe(true);
      expect(lstatSync(files.dir).mode & 0o777).toBe(0o700);
      expect(lstatSync(join(home, 'runs', 'build-17')).mode & 0o777).toBe(0o700);
      removeRunState(files);
    } finally {
      rmSync(planted, { force: true });
    }
  });

  it('refuse a run dir another user planted, a symlinked run dir, and a runs dir others may write to', () => {
    const runs = join(home, 'runs');
    mkdirSync(join(runs, 'build-17'), { recursive: true });
    chownSync(join(runs, 'build-17'), 65534, 65534);
    expect(() => createRunState()).toThrow(/run dir .*build-17 is owned by uid 65534.*\(CCCI_RUNS_DIR\)/);
    rmSync(join(runs, 'build-17'), { recursive: true });
    symlinkSync(home, join(runs, 'build-17'));
    expect(() => createRunState()).toThrow(/run dir .*build-17 is a symlink/);
    rmSync(join(runs, 'build-17'));
    chmodSync(runs, 0o777);
    expect(() => createRunState()).toThrow(/runs dir .* is writable by others \(mode 777\)/);
    chmodSync(runs, 0o1777); // sticky, like /tmp: others cannot touch what is ours
    expect(createRunState().dir).toBe(join(runs, 'build-17', `state-${process.pid}`));
  });

  it('keep two same-domain runs apart: each counts one deploy, the first one ending removes only its own', async () => {
    lockDir();
    const first = startHelper('run-state.mjs', ['st-123456.ci.example', '400'], { env: { CCCI_RUN_ID: 'same-build' } });
    await first.waitFor('LOCKED');
    const second = startHelper('run-state.mjs', ['st-123456.ci.example', '0'], { env: { CCCI_RUN_ID: 'same-build' } });
    await second.waitFor('FILES');
    const files = (h: typeof first) => JSON.parse(h.lines.find((l) => l.startsWith('FILES'))!.slice(6)) as Record<string, string>;
    expect(files(first).deployCount).not.toBe(files(second).deployCount);
    expect(await first.waitFor('BEFORE-EXIT')).toBe('BEFORE-EXIT count=1');
    await first.waitFor('DONE');
    expect(await second.waitFor('LOCKED', 10_000)).toBe('LOCKED count=1');
    expect(await second.exited).toEqual({ code: 0, signal: null });
    expect(second.output()).not.toMatch(/Error/);
  });
});
