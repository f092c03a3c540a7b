// `cc-ci step -- <command...>`: the CLI face of runner/step.ts, imported in main so that `--help`
// loads neither it nor the addon.
import { InputError } from '../../lib/errors.js';

export const usage = `Usage: cc-ci step -- <command> [args...]

Runs <command> (no shell) in a new session, its own process group, with CCCI_EXPECTED_PPID set to
this wrapper's pid. SIGTERM, SIGINT and SIGHUP sent to the wrapper are forwarded to that whole
group; the death of the wrapper's own parent counts as SIGTERM. Once the command exits, anything it
left running in its group gets SIGTERM.

Options:
  -h, --help  this help

Exit codes: the command's own, or 128+n when it died of signal n (SIGTERM: 143, SIGKILL: 137);
127 when the command is not found, 126 when it cannot be executed, 2 for a usage error.`;

export async function main(args: string[]): Promise<number> {
  const dashdash = args.indexOf('--');
  const own = dashdash === -1 ? [] : args.slice(0, dashdash);
  const command = dashdash === -1 ? args : args.slice(dashdash + 1);
  if (own.length > 0) throw new InputError(`unknown option ${JSON.stringify(own[0])} (usage: cc-ci step -- <command> [args...])`);
  if (dashdash === -1 && command[0]?.startsWith('-')) {
    throw new InputError(`unknown option ${JSON.stringify(command[0])} (usage: cc-ci step -- <command> [args...])`);
  }
  const { runStep } = await import('../step.js');
  return runStep(command);
}
