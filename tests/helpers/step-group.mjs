// Helper process: a command for `cc-ci step` whose process group has a second member (sleep). On
// SIGTERM the leader says so, then waits for that member to exit before exiting 143 itself, so it
// only ever exits if the member got the signal too: proof that the whole group was signalled.
import { spawn } from 'node:child_process';
import { writeSync } from 'node:fs';

const out = (line) => writeSync(1, `${line}\n`);
const member = spawn('sleep', ['300'], { stdio: 'ignore' });
const memberExit = new Promise((resolve) => member.once('exit', (code, signal) => resolve(signal ?? code)));
process.on('SIGTERM', async () => {
  out('LEADER TERM');
  out(`MEMBER EXITED ${await memberExit}`);
  process.exit(143);
});
out(`READY pid=${process.pid} ppid=${process.ppid} member=${member.pid} expected=${process.env.CCCI_EXPECTED_PPID}`);
setInterval(() => {}, 1 << 30);
