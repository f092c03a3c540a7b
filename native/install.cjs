// `npm install`'s step for the addon: use the binary that is already there when it loads and was
// built from these sources (the prebuild in a packed cc-ci, or a fresh local build), and compile
// with node-gyp only when none is. node-gyp-build's own install step takes any prebuild that loads,
// even one of older sources, which is how a stale prebuild would shadow a checkout's native/.
'use strict';

const { spawnSync } = require('node:child_process');
const { join } = require('node:path');

const { loadAddon } = require('./load.cjs');

const root = join(__dirname, '..');
try {
  const { path } = loadAddon(root, true);
  console.log(`cc-ci: using the addon at ${path}`);
} catch (error) {
  console.log(`cc-ci: compiling the addon (${error.message})`);
  // npm hands its own node-gyp to install scripts; a checkout also has its devDependency.
  const nodeGyp = process.env.npm_config_node_gyp || require.resolve('node-gyp/bin/node-gyp.js');
  const build = spawnSync(process.execPath, [nodeGyp, 'rebuild'], { cwd: root, stdio: 'inherit' });
  process.exitCode = build.status ?? 1;
}
