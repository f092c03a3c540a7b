// Fixtures for the janitor suites (tests/janitor/, and any test that needs a live run): run-app
// domains, orphans made the way real ones are (a run that held its lock and was SIGKILLed), and a
// sweep whose teardown and log are recorded.
import { existsSync, readdirSync } from 'node:fs';

import { janitor, type JanitorOptions, type JanitorReport } from '../../lib/janitor.js';
import { lockPath } from '../../lib/lockfiles.js';
import { startHelper, type Helper } from './processes.js';

/** A run-app domain under the default base: `ab12-<hex6>.ci.commoninternet.net`. */
export function runApp(hex6: string, prefix = 'ab12'): string {
  return `${prefix}-${hex6}.ci.commoninternet.net`;
}

/** A live run: a helper process holding `domain`'s app lock through the real library. */
export async function liveRun(domain: string): Promise<Helper> {
  const run = startHelper('hold-lock.mjs', [domain]);
  await run.waitFor('HELD');
  return run;
}

/** An orphan: its run took the lock, then died by SIGKILL; the lockfile stays, unheld. */
export async function orphan(domain: string): Promise<void> {
  const run = await liveRun(domain);
  run.child.kill('SIGKILL');
  await run.exited;
  if (!existsSync(lockPath(domain))) throw new Error(`fixture: no lockfile left for ${domain}`);
}

export interface RecordedSweep {
  report: JanitorReport;
  /** Domains passed to teardown, in call order. */
  tornDown: string[];
  lines: string[];
  log(): string;
}

/** One janitor sweep over `candidates`; teardown records (and runs `teardown` when given). */
export async function sweep(candidates: string[], options: Partial<Omit<JanitorOptions, 'discover'>> = {}): Promise<RecordedSweep> {
  const tornDown: string[] = [];
  const lines: string[] = [];
  const report = await janitor({
    ...options,
    discover: () => candidates,
    log: (line) => lines.push(line),
    teardown: (domain) => {
      tornDown.push(domain);
      return options.teardown?.(domain);
    },
  });
  return { report, tornDown, lines, log: () => lines.join('\n') };
}

/** The lock dir's entries, sorted. */
export function lockDirEntries(dir: string): string[] {
  return readdirSync(dir).sort();
}
