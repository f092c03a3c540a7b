// Every error cc-ci throws on purpose, and the one function that turns an error into an exit code.
//
// Each class carries a `code`: `ERR_CCCI_*`, or the errno code when the kernel refused (a planted
// lockfile keeps its `EISDIR`, `ELOOP`, ...). Commands never pick an exit code themselves: they throw,
// or return 0, and exitCodeFor() decides. The table is in docs/inputs.md#exit-codes.

/** The exit codes a cc-ci command ends with (the signal ones are 128 + n, from lib/lifetime.ts). */
/** `leaseLost`: a process that lost its etcd lease and aborted (docs/scale-out.md#self-abort). */
export const EXIT = { ok: 0, failed: 1, badInput: 2, leaseLost: 75 } as const;

export interface CcciErrorOptions extends ErrorOptions {
  /** The file the error is about, when there is one. */
  path?: string;
}

/** The base of every error cc-ci throws on purpose. */
export class CcciError extends Error {
  readonly code: string;
  readonly path: string | undefined;
  constructor(code: string, message: string, options: CcciErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CcciError';
    this.code = code;
    this.path = options.path;
  }
}

/**
 * A bad input at a boundary: a variable, flag, file or value the user set. The message names it
 * and its value; the command exits 2. `code` is `ERR_CCCI_INPUT` unless a narrower one applies.
 */
export class InputError extends CcciError {
  constructor(message: string, options: CcciErrorOptions & { code?: string } = {}) {
    super(options.code ?? 'ERR_CCCI_INPUT', message, options);
    this.name = 'InputError';
  }
}

/** A value as an error message shows it: strings quoted, anything else by type and value, never a throw. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return `${typeof value} ${String(value)}`;
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** A subprocess that ran and failed, timed out or was cancelled: the command and its output's tail. */
export class CommandError extends CcciError {
  constructor(
    readonly command: string,
    readonly exitCode: number | undefined,
    readonly output: string,
    why: string,
  ) {
    super('ERR_CCCI_COMMAND', `${command} ${why}${output ? `\n${output.split('\n').slice(-20).join('\n')}` : ''}`);
    this.name = 'CommandError';
  }
}

/** What an app still had after its teardown. */
export interface Residual {
  services: string[];
  volumes: string[];
  secrets: string[];
  networks: string[];
  env: string[];
}

/** A teardown that left something behind. */
export class TeardownError extends CcciError {
  constructor(
    readonly domain: string,
    readonly residual: Residual,
  ) {
    super('ERR_CCCI_TEARDOWN', `teardown of ${domain} left: ${JSON.stringify(residual)}`);
    this.name = 'TeardownError';
  }
}

/** A run that got to its end with a stage failed or something left behind: exit 1. */
export class RunFailedError extends CcciError {
  constructor(message: string) {
    super('ERR_CCCI_RUN_FAILED', message);
    this.name = 'RunFailedError';
  }
}

/**
 * How a run ended: a guarded signal, `main` returning (or, without run(), the event loop running
 * dry), `main` throwing (or an uncaught error), or `main` stalling on a promise nothing can settle.
 */
export type RunEnd = 'SIGTERM' | 'SIGINT' | 'SIGHUP' | 'SIGALRM' | 'returned' | 'threw' | 'stalled' | 'lost';

/** The reason a Lifetime's signal is aborted with: which way the run ended, and the exit code that follows. */
export class RunAbortedError extends Error {
  override readonly name = 'AbortError';
  readonly code = 'ABORT_ERR';
  constructor(
    readonly end: RunEnd,
    readonly exitCode: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** An error cc-ci threw on purpose, so one line says it all (anything else is a bug: show its stack). */
export function isExpected(error: unknown): error is Error & { code: string } {
  return error instanceof CcciError || isParseArgsError(error);
}

// node:util parseArgs refuses an unknown or malformed flag with one of these codes.
function isParseArgsError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

/** The exit code a command ends with when `error` ends it. The only place that decides one. */
export function exitCodeFor(error: unknown): number {
  if (error instanceof RunAbortedError) return error.exitCode;
  if (error instanceof InputError || isParseArgsError(error)) return EXIT.badInput;
  return EXIT.failed;
}

/** `error`'s message on one line (parseArgs spreads some over three), without a leading `cc-ci: `. */
export function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/^cc-ci: /, '').replace(/\s*\n\s*/g, ' ');
}
