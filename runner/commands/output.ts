// Not a command: how cli.ts and the commands on the start-up path (`locks`) print, and the help
// rows several commands share. console.log's first call sets up a stdout stream, which costs a
// start-up a few ms (`npm run bench cli`); write(2) to the fd costs nothing to set up.
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

// The etcd lock backend's Environment rows, which every command that takes or probes an app lock
// lists (docs/scale-out.md#settings). Here because cli.ts loads this module anyway: a command's
// `--help` loads nothing more for it.
const ETCD_ROWS: [string, string][] = [
  ['CCCI_LOCK_BACKEND', 'the app lock: flock or etcd (default flock)'],
  ['CCCI_ETCD_ENDPOINTS', "etcd's client URLs, comma-separated (default unset; etcd needs it)"],
  ['CCCI_ETCD_CA', 'a PEM CA file for https endpoints (default unset)'],
  ['CCCI_ETCD_CERT', 'a PEM client certificate, with CCCI_ETCD_KEY (default unset)'],
  ['CCCI_ETCD_KEY', 'its PEM key (default unset)'],
  ['CCCI_ETCD_LEASE_SECONDS', "the lease's TTL (default 30)"],
  ['CCCI_ETCD_RENEW_SECONDS', 'how often the lease is renewed (default 5)'],
  ['CCCI_ETCD_ABORT_SECONDS', 'no renewal for this long: stop, exit 75 (default 20)'],
  ['CCCI_HOST_ID', "this runner's name in an etcd lock (default the hostname)"],
];

/** Those rows, each description at `column` (or two spaces after a longer name). */
export function etcdEnvironment(column: number): string {
  return ETCD_ROWS.map(([name, what]) => `  ${name}`.padEnd(Math.max(column, name.length + 4)) + what).join('\n');
}
