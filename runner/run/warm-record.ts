// The recovery record of a warm app a quick run upgrades in place: written before the app is
// touched, read by the next holder of the app's lock (a quick run or warm-reconcile), which
// completes the rollback it describes before anything else. docs/recipes.md#the-quick-lane
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { ensureWarmDir } from '../../lib/abra-dir.js';
import { InputError } from '../../lib/errors.js';
import { writeFileAtomically } from '../../lib/run-state.js';

/** Where the warm app's data was copied before the upgrade. */
export type WarmSnapshot =
  /** `abra app backup create`'s snapshot (null: abra printed no id; the latest is restored). */
  | { kind: 'backup'; id: string | null }
  /** A tar of each volume in `dir`, made and restored through a container of `image`. */
  | { kind: 'volumes'; dir: string; image: string; volumes: { volume: string; file: string }[] };

export interface WarmRecord {
  domain: string;
  recipe: string;
  /** The published version the app was at: the rollback redeploys it. */
  version: string;
  /** The app's .env as it was (ccci.yml's env and install_steps.sh may change it). */
  env: string;
  /** Null until the snapshot is taken: the app was not touched before that. */
  snapshot: WarmSnapshot | null;
  /** The health check the rollback must pass. */
  health: { path: string; status: number[] | null; timeoutMs: number };
  runId: string;
  pid: number;
  startedAt: string;
}

/** `<runs dir>/warm/<domain>.json`. */
export function recordPath(domain: string): string {
  return join(ensureWarmDir(), `${domain}.json`);
}

/** Where a volume snapshot of `domain` goes: `<runs dir>/warm/<domain>.snapshot/`. */
export function snapshotDir(domain: string): string {
  return join(ensureWarmDir(), `${domain}.snapshot`);
}

/** The record of `domain`, or null; an unreadable one is bad input naming the file (never guessed around). */
export function readRecord(domain: string): WarmRecord | null {
  const path = recordPath(domain);
  if (!existsSync(path)) return null;
  let record: WarmRecord;
  try {
    record = JSON.parse(readFileSync(path, 'utf8')) as WarmRecord;
  } catch (error) {
    throw new InputError(`the warm app recovery record ${path} cannot be read: ${(error as Error).message}`, { path });
  }
  if (record?.domain !== domain || typeof record.version !== 'string' || typeof record.env !== 'string') {
    throw new InputError(`the warm app recovery record ${path} is not one of ${domain}`, { path });
  }
  return record;
}

export function writeRecord(record: WarmRecord): void {
  writeFileAtomically(recordPath(record.domain), `${JSON.stringify(record, null, 2)}\n`);
}

/** Removes the record and its volume snapshot: the rollback is complete. */
export function removeRecord(domain: string): void {
  rmSync(snapshotDir(domain), { recursive: true, force: true });
  rmSync(recordPath(domain), { force: true });
}
