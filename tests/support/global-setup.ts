// One build under test. Test files import lib/ and runner/ source through vitest, while what they
// spawn (tests/helpers/*.mjs, the CLI at dist/runner/cli.js) imports dist/ and loads the addon
// from build/Release. Before any test file runs, this brings dist/ and the addon up to date with
// the sources, so both halves run the same code, whether the run is `npm test` or
// `npx vitest run tests/lock/basics.test.ts`. A compile error fails the whole run with the
// compiler's output. In watch mode it builds again before every rerun.
//
// - TypeScript: `tsc -p tsconfig.json --incremental`, its build info kept in node_modules/.cache
//   (not in dist/, which npm publishes). tsc trusts that info even when the outputs it lists are
//   gone, so the info is dropped whenever an output is missing (a deleted dist/, say).
// - The addon: `node-gyp build` (make, incremental) when build/Release/cc_ci.node is missing or
//   older than native/ or binding.gyp; `node-gyp configure` first when build/Makefile is missing
//   or older than binding.gyp.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { TestProject } from 'vitest/node';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BUILD_INFO = join(ROOT, 'node_modules', '.cache', 'cc-ci', 'tsconfig.tsbuildinfo');
const ADDON = join(ROOT, 'build', 'Release', 'cc_ci.node');
const MAKEFILE = join(ROOT, 'build', 'Makefile');
const BINDING_GYP = join(ROOT, 'binding.gyp');

const require = createRequire(import.meta.url);

/** Every file below `dir` (relative to ROOT), recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(ROOT, join(entry.parentPath, entry.name)));
}

function mtimeMs(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -Infinity;
  }
}

/** Runs `node script args` in ROOT; throws with its whole output if it fails. */
function run(what: string, script: string, args: string[]): void {
  const result = spawnSync(process.execPath, [script, ...args], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.status === 0) return;
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim();
  const how = result.error ? String(result.error) : result.signal ? `killed by ${result.signal}` : `exit ${result.status}`;
  throw new Error(`${what} failed (${how}); no test ran against a stale build:\n${output}`);
}

function compileTypeScript(): void {
  // The outputs tsc writes for each source (tsconfig.json: outDir dist, rootDir ., declaration, sourceMap).
  const sources = ['lib', 'runner'].flatMap(filesUnder).filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'));
  const outputs = sources.flatMap((file) => ['.js', '.js.map', '.d.ts'].map((ext) => join(ROOT, 'dist', file.replace(/\.ts$/, ext))));
  if (outputs.some((output) => !existsSync(output))) rmSync(BUILD_INFO, { force: true });
  mkdirSync(dirname(BUILD_INFO), { recursive: true });
  run('tsc -p tsconfig.json', require.resolve('typescript/bin/tsc'), [
    '-p',
    'tsconfig.json',
    '--incremental',
    '--tsBuildInfoFile',
    BUILD_INFO,
  ]);
}

function buildAddon(): boolean {
  const newest = Math.max(...filesUnder('native').map((file) => mtimeMs(join(ROOT, file))), mtimeMs(BINDING_GYP));
  if (mtimeMs(ADDON) >= newest) return false;
  const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js');
  if (mtimeMs(MAKEFILE) < mtimeMs(BINDING_GYP)) run('node-gyp configure', nodeGyp, ['configure']);
  run('node-gyp build', nodeGyp, ['build']);
  return true;
}

function build(): void {
  const start = performance.now();
  compileTypeScript();
  const rebuilt = buildAddon();
  const seconds = ((performance.now() - start) / 1000).toFixed(1);
  // stderr: stdout is `vitest list`'s.
  process.stderr.write(`global setup: dist/ compiled${rebuilt ? ', addon rebuilt' : ', addon up to date'} (${seconds} s)\n`);
}

export default function setup(project: TestProject): void {
  build();
  project.onTestsRerun(() => build());
}
