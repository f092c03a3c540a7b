// Helper process: a plain parent for a guarded child (lifetime-guarded.mjs with these args), in the
// same process group and sharing stdout/stderr. The test SIGKILLs this wrapper alone: only the
// child's parent-death signal can then tell it that its parent is gone.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const guarded = fileURLToPath(new URL('./lifetime-guarded.mjs', import.meta.url));
const child = spawn(process.execPath, [guarded, ...process.argv.slice(2)], { stdio: 'inherit' });
console.log(`WRAPPED ${child.pid}`);
setInterval(() => {}, 1 << 30);
