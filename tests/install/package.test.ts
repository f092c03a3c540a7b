// The package as a user installs it: `npm pack` builds the prebuilt addon into the tarball by
// itself, `npm install -g <tarball>` then needs no compiler (PATH holds node and sh, nothing else),
// and a prebuild whose sources are not the checkout's is never loaded (native/load.cjs).
// The tarball is packed from a copy of the tree: packing rebuilds build/ and dist/, which the rest
// of the suite is using.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ROOT, cleanup, tempDir } from '../support/processes.js';
import { copyTree } from '../support/tree.js';

const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
const NPM_CLI = realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim());
/** What a compile at install would need; none of it may be reachable from the install's PATH. */
const TOOLCHAIN = ['cc', 'c++', 'gcc', 'g++', 'make', 'python3'];

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Result {
  const result = spawnSync(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    encoding: 'utf8',
    timeout: 240_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return { code: result.status, stdout: result.stdout, stderr: `${result.stderr}${result.error ? String(result.error) : ''}` };
}

function ok(result: Result, what: string): Result {
  if (result.code !== 0) throw new Error(`${what} exited ${result.code}:\n${result.stdout}\n${result.stderr}`);
  return result;
}

describe('the package', { timeout: 300_000 }, () => {
  afterAll(cleanup);
  let work: string;
  let tree: string;
  let tarball: string;
  let files: string[];

  beforeAll(() => {
    work = tempDir('ccci-pack-');
    tree = join(work, 'tree');
    mkdirSync(tree);
    copyTree(tree);
    symlinkSync(join(ROOT, 'node_modules'), join(tree, 'node_modules'));
    const packed = ok(run(process.execPath, [NPM_CLI, 'pack', '--json', '--pack-destination', work], { cwd: tree }), 'npm pack');
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as [{ filename: string; files: { path: string }[] }];
    tarball = join(work, info.filename);
    files = info.files.map((file) => file.path).sort();
  }, 300_000);

  it('carries the prebuilt addon, the compiled CLI and the sources to compile elsewhere, and nothing of a checkout', () => {
    expect(files).toContain('prebuilds/linux-x64/cc-ci.glibc.node');
    for (const file of [
      'dist/runner/cli.js',
      'dist/lib/index.js',
      'dist/lib/native.js',
      'native/load.cjs',
      'native/install.cjs',
      'binding.gyp',
    ]) {
      expect(files).toContain(file);
    }
    expect(files.filter((file) => /^(build|node_modules|bench|\.ci)\//.test(file))).toEqual([]);
    // The tests ship only what `cc-ci demo` runs: the stand-in abra and the demo recipe.
    expect(
      files.filter(
        (file) => file.startsWith('tests/') && !/^tests\/fixtures\/(abra\/|make-recipe-repo\.sh$|recipes\/ccci-demo\/)/.test(file),
      ),
    ).toEqual([]);
  });

  it('installs with npm install -g and no compiler on PATH, and its CLI and cc-ci/native work', () => {
    const bin = join(work, 'path');
    mkdirSync(bin);
    // npm runs scripts with sh; the CLI's shebang finds node on PATH. Nothing else is reachable.
    symlinkSync(process.execPath, join(bin, 'node'));
    symlinkSync('/bin/sh', join(bin, 'sh'));
    const env = { ...process.env, PATH: bin };
    for (const tool of TOOLCHAIN) expect(run('sh', ['-c', `command -v ${tool}`], { cwd: work, env }).code).not.toBe(0);

    const prefix = join(work, 'prefix');
    ok(
      run(process.execPath, [NPM_CLI, 'install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], {
        cwd: work,
        env,
      }),
      'npm install -g',
    );
    const installed = join(prefix, 'lib', 'node_modules', PACKAGE.name);
    expect(existsSync(join(installed, 'build'))).toBe(false); // nothing was compiled
    expect(ok(run(join(prefix, 'bin', 'cc-ci'), ['--version'], { cwd: work, env }), 'cc-ci --version').stdout.trim()).toBe(
      `cc-ci ${PACKAGE.version}`,
    );

    // A lock round-trip through the package's export, from a script beside its node_modules.
    const lockfile = join(work, 'round-trip.lock');
    const probe = join(prefix, 'lib', 'probe.mjs');
    writeFileSync(
      probe,
      `import { LOCK_EX, LOCK_NB, LOCK_UN, addonPath, flock, openLockFile } from 'cc-ci/native';
const [first, second] = [openLockFile(process.argv[2], true), openLockFile(process.argv[2], false)];
console.log(JSON.stringify({ addonPath, held: flock(first, LOCK_EX | LOCK_NB), refused: !flock(second, LOCK_EX | LOCK_NB),
  released: flock(first, LOCK_UN), retaken: flock(second, LOCK_EX | LOCK_NB) }));
`,
    );
    const round = JSON.parse(ok(run(process.execPath, [probe, lockfile], { cwd: work, env }), 'the lock round-trip').stdout) as Record<
      string,
      unknown
    >;
    expect(round).toEqual({
      addonPath: join(installed, 'prebuilds', 'linux-x64', 'cc-ci.glibc.node'),
      held: true,
      refused: true,
      released: true,
      retaken: true,
    });
  });

  it('never loads a prebuild of other sources than native/, and the install step compiles instead', () => {
    // The copy is a checkout after `npm pack`: a fresh prebuild in prebuilds/. Edit a source, with
    // no local build: the prebuild no longer matches, and loading says so rather than using it.
    rmSync(join(tree, 'build'), { recursive: true, force: true });
    appendFileSync(join(tree, 'native', 'dir.cc'), '// a change the prebuild does not have\n');
    const load = ['--input-type=module', '-e', "const n = await import('./dist/lib/native.js'); console.log(n.addonPath, n.sourceHash)"];
    const stale = run(process.execPath, load, { cwd: tree });
    expect(stale.code).not.toBe(0);
    expect(stale.stderr).toContain('ERR_CCCI_ADDON_STALE');
    expect(stale.stderr).toMatch(/prebuilds\/linux-x64\/cc-ci\.glibc\.node was built from other sources/);

    // npm install's step (node-gyp-build's would take the prebuild, since it loads) compiles.
    ok(run(process.execPath, ['native/install.cjs'], { cwd: tree }), 'the install step');
    const fresh = ok(run(process.execPath, load, { cwd: tree }), 'loading the new build');
    const { sourceHash } = createRequire(import.meta.url)(join(tree, 'native', 'load.cjs')) as { sourceHash(root: string): string };
    expect(fresh.stdout.trim()).toBe(`${join(tree, 'build', 'Release', 'cc_ci.node')} ${sourceHash(tree)}`);
    expect(readdirSync(join(tree, 'prebuilds', 'linux-x64'))).toEqual(['cc-ci.glibc.node']); // left as it was
  });
});
