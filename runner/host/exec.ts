// Subprocesses of a run: every one listens to the run's AbortSignal (SIGTERM on abort, SIGKILL
// 5 s later), has a timeout, and streams its output into the run's log line by line.
import { execa } from 'execa';

import { checkActGates } from '../../lib/act-gate.js';
import { CommandError, InputError } from '../../lib/errors.js';
import type { Log } from './log.js';
import { timings } from './timings.js';

export interface ExecOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  log?: Log;
  /** Prefix for logged output lines; default `[<command>]`. */
  tag?: string;
  /** Do not log output lines (machine-readable output). */
  quiet?: boolean;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
}

/** Runs `command args`, resolving with its output; throws CommandError on failure or cancel. */
export async function exec(command: string, args: string[], options: ExecOptions = {}): Promise<ExecResult> {
  checkActGates(); // a lost etcd lease: no further action on the host
  const tag = options.tag ?? `[${command}]`;
  const log = options.quiet ? undefined : options.log;
  const echo = function* (line: unknown) {
    log?.(`  ${tag} ${String(line)}`);
    yield line;
  };
  const result = await timings.outsideOf(() =>
    execa(command, args, {
      cancelSignal: options.signal,
      forceKillAfterDelay: 5_000,
      timeout: options.timeoutMs,
      env: options.env,
      cwd: options.cwd,
      stdin: 'ignore',
      stdout: log ? ['pipe', echo] : 'pipe',
      stderr: log ? ['pipe', echo] : 'pipe',
      reject: false,
    }),
  );
  const shown = [command, ...args].join(' ');
  if (result.failed && result.exitCode === undefined && !result.isCanceled && /ENOENT/.test(result.originalMessage ?? '')) {
    throw new InputError(`${command} is not installed or not on PATH (needed for: ${shown})`);
  }
  if (!result.failed) return { stdout: result.stdout, stderr: result.stderr };
  const output = [result.stdout, result.stderr].filter(Boolean).join('\n');
  if (result.isCanceled) throw new CommandError(shown, result.exitCode, output, 'was cancelled');
  if (result.timedOut) throw new CommandError(shown, result.exitCode, output, `timed out after ${options.timeoutMs} ms`);
  if (result.exitCode === undefined) throw new CommandError(shown, undefined, output, `could not run: ${result.originalMessage}`);
  throw new CommandError(shown, result.exitCode, output, `exited ${result.exitCode}`);
}
