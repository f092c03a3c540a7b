// Not a command: how cli.ts and the commands on the start-up path (`locks`) print. console.log's
// first call sets up a stdout stream, which costs a start-up a few ms (`npm run bench cli`);
// write(2) to the fd costs nothing to set up.
const { writeSync } = process.getBuiltinModule('node:fs');

/**
 * `text` and a newline to fd 1 or 2 with write(2), as console.log would print them: a closed reader
 * (EPIPE) is ignored as console ignores it, and a non-blocking fd that is full gets the rest
 * through the stream.
 */
export function print(fd: 1 | 2, text: string): void {
  const bytes = Buffer.from(`${text}\n`);
  let done = 0;
  try {
    while (done < bytes.length) done += writeSync(fd, bytes, done);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EAGAIN') (fd === 1 ? process.stdout : process.stderr).write(bytes.subarray(done));
    else if (code !== 'EPIPE') throw error;
  }
}
