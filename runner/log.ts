// The run's log: every line goes to stdout (the Drone log) and to `<run dir>/run.log`.
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type Log = (line: string) => void;

/** A log that writes to stdout and, when `file` is given, appends to it too. */
export function createLog(file?: string): Log {
  if (file) mkdirSync(dirname(file), { recursive: true });
  return (line: string) => {
    process.stdout.write(`${line}\n`);
    if (file) appendFileSync(file, `${new Date().toISOString()} ${line}\n`);
  };
}
