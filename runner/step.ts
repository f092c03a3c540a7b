// `cc-ci step -- <command...>`: the CI step wrapper, in place of a shell `setsid … & trap … wait`.
//
// It starts the command in a new session (its own process group), tells it which pid its parent
// is (CCCI_EXPECTED_PPID, for the lifetime guards' orphan check), forwards SIGTERM, SIGINT and
// SIGHUP to the command's whole group, and exits with the command's exact code, or 128+n when the
// command died of signal n. Nothing the wrapper does on its own account (a forward to a group that
// is already gone, a sweep of leftovers) can change that code: a green command is a green step.
//
// Cancel paths: drone-runner-exec cancels a step by SIGKILLing the step's shell, and nothing else.
// The wrapper arms its own parent-death signal, so that shell's death reaches it as SIGTERM and is
// forwarded like any cancel. If the wrapper itself is SIGKILLed, the command's own parent-death
// signal (armed by installLifetimeGuards) takes over.
import { spawn } from 'node:child_process';
import { writeSync } from 'node:fs';
import { constants } from 'node:os';

import { setPdeathsig } from '../lib/native.js';
import { InputError } from '../lib/errors.js';

/** The signals forwarded to the command's process group. */
export const FORWARDED_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

/** Exit codes of a command that could not be started, as a POSIX shell reports them. */
export const EXIT_NOT_FOUND = 127;
export const EXIT_CANNOT_EXECUTE = 126;

export interface StepOptions {
  /** The command's environment, before CCCI_EXPECTED_PPID is added; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Where the wrapper's own lines go; default stderr (synchronous, never throws). */
  log?: (line: string) => void;
}

/**
 * Runs `command` (argv, no shell) as described above and resolves with the exit code the step
 * should end with. Forwarding stops once the command has exited.
 */
export async function runStep(command: readonly string[], options: StepOptions = {}): Promise<number> {
  const [file, ...args] = command;
  if (file === undefined || file === '') throw new InputError('no command given: usage is cc-ci step -- <command> [args...]');
  const log = options.log ?? logToStderr;
  // Called from signal listeners: a log that throws must not take the wrapper down with it.
  const say = (line: string): void => {
    try {
      log(`cc-ci step: ${line}`);
    } catch {
      logToStderr(`cc-ci step: ${line}`);
    }
  };

  setPdeathsig(constants.signals.SIGTERM);

  let group: number | undefined;
  const forward = (name: NodeJS.Signals): void => {
    if (group === undefined) return; // spawning failed: nothing to forward to
    say(`${name} received — forwarding it to the command's process group ${group}`);
    signalGroup(group, name, say);
  };
  const listeners = FORWARDED_SIGNALS.map((name) => [name, () => forward(name)] as const);
  // Listening before the spawn: a cancel that lands while it starts is forwarded, not fatal.
  for (const [name, listener] of listeners) process.on(name, listener);
  try {
    const child = spawn(file, args, {
      detached: true, // setsid(): a session and process group of its own
      stdio: 'inherit',
      env: { ...(options.env ?? process.env), CCCI_EXPECTED_PPID: String(process.pid) },
    });
    group = child.pid;
    const outcome = await new Promise<{ code: number | null; signal: NodeJS.Signals | null } | { error: NodeJS.ErrnoException }>(
      (resolve) => {
        child.once('error', (error: NodeJS.ErrnoException) => resolve({ error }));
        child.once('exit', (code, signal) => resolve({ code, signal }));
      },
    );
    if ('error' in outcome) return startFailure(file, outcome.error, say);
    sweep(group!, say);
    if (outcome.code !== null) return outcome.code;
    return 128 + constants.signals[outcome.signal!];
  } finally {
    for (const [name, listener] of listeners) process.removeListener(name, listener);
  }
}

function startFailure(file: string, error: NodeJS.ErrnoException, say: (line: string) => void): number {
  if (error.code === 'ENOENT') {
    say(`command not found: ${file}`);
    return EXIT_NOT_FOUND;
  }
  say(`cannot execute ${file}: ${error.message}`);
  return EXIT_CANNOT_EXECUTE;
}

// Whatever the command left running in its group (a background job, an orphaned child) ends with
// the step, as it would have under the shell trap this replaces.
function sweep(group: number, say: (line: string) => void): void {
  try {
    process.kill(-group, 0);
  } catch {
    return; // ESRCH: the group is gone, the usual case; EPERM: not ours to signal
  }
  say(`the command left processes in its process group ${group} — sending them SIGTERM`);
  signalGroup(group, 'SIGTERM', say);
}

/** kill(-group, signal). A group that is already gone is not an error; anything else is logged, never thrown. */
function signalGroup(group: number, name: NodeJS.Signals, say: (line: string) => void): void {
  try {
    process.kill(-group, name);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ESRCH') say(`could not send ${name} to process group ${group}: ${code ?? String(error)}`);
  }
}

function logToStderr(line: string): void {
  try {
    writeSync(2, `${line}\n`);
  } catch {
    // the CI log is gone; the exit code still tells
  }
}
