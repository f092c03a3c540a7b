// The run's log: every line goes to stdout (the Drone log) and to `<run dir>/run.log`.
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

import { InputError } from '../../lib/errors.js';

export type Log = (line: string) => void;

/** A log that writes to stdout and, when `file` is given, appends to it too. */
export function createLog(file?: string): Log {
  if (file) {
    try {
      mkdirSync(dirname(file), { recursive: true });
    } catch (error) {
      throw new InputError(`run dir ${dirname(file)} cannot be created (CCCI_RUNS_DIR): ${(error as Error).message}`);
    }
  }
  return (line: string) => {
    process.stdout.write(`${line}\n`);
    if (file) appendFileSync(file, `${new Date().toISOString()} ${line}\n`);
  };
}
