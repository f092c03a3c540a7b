// A copy of this checkout's files (tracked and new, not ignored: no build/, dist/, node_modules/),
// for tests that pack or `npm ci` a tree: doing that here would rebuild what the suite is using.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { ROOT } from './processes.js';

export function copyTree(dest: string): void {
  const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: ROOT, encoding: 'utf8' })
    .split('\0')
    .filter((file) => file !== '' && existsSync(join(ROOT, file)));
  const tar = spawnSync('sh', ['-c', 'tar -C "$1" --null -T - -cf - | tar -C "$2" -xf -', 'sh', ROOT, dest], { input: files.join('\0') });
  if (tar.status !== 0) throw new Error(`copying the tree failed: ${tar.stderr}`);
}
