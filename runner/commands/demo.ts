// `cc-ci demo`: the first five minutes (runner/demo.ts). The demo and execa are imported in main,
// so `--help` loads neither.
import { parseArgs } from 'node:util';

export const usage = `Usage: cc-ci demo

Shows what cc-ci is for, on this host, in about a minute, and checks each claim it makes:
  1. two CI runs of the bundled demo recipe (ccci-demo) start at once, each under its app lock;
  2. \`cc-ci locks\` shows both locks held;
  3. one run is SIGKILLed mid-deploy: nothing of it tears its app down, the kernel frees its lock;
  4. its retry's janitor reaps the dead run's app and leaves the live run's alone;
  5. the live run and the retry end green, each with its summary and results.json;
  6. nothing is left: no app on the swarm, no lock held, no run process.
Every part is the real one except abra: the runs use the test-only stand-in of
tests/fixtures/abra, put on their PATH alone. Everything goes in a fresh /tmp/ccci-demo-* dir with
its own lock dir and base domain (demo<hex>.test), so no other run on this host is touched.

Needs, as set up by .ci/setup-swarm.sh and .ci/setup-ingress.sh: docker as a swarm manager, the
image ccci/busybox:latest, the network proxy; with the ingress's CA at
/var/lib/cc-ci-test/ingress-root.pem, health checks go over HTTPS through the ingress (else off).

Options:
  -h, --help  this help

Environment:
  PATH  where docker, git and bash are found; the runs get the stand-in's dir in front of it
        (default /usr/bin:/bin)

Exit codes: 0 every claim held, 1 one did not (or the host is not set up), 2 bad input.`;

export async function main(args: string[]): Promise<number> {
  parseArgs({ args, options: {}, strict: true, allowPositionals: false });
  const [{ runDemo }, { print }] = await Promise.all([import('../demo.js'), import('./output.js')]);
  return runDemo((line) => print(1, line));
}
