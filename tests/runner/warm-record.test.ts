// The quick lane's recovery records (runner/run/warm-record.ts): in `<runs dir>/warm/`, a dir only
// the runner's user may write to, written whole, read back exactly, and a planted or mangled one
// refused with a line naming it (docs/threat-model.md#the-runs-dir). Real files in temp dirs.
import { chownSync, mkdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { ensureWarmDir, runId } from '../../lib/abra-dir.js';
import { InputError } from '../../lib/errors.js';
import { readRecord, recordPath, removeRecord, snapshotDir, type WarmRecord, writeRecord } from '../../runner/run/warm-record.js';
import { tempDir, useHelpers } from '../support/processes.js';

useHelpers();
const saved = { ...process.env };
let runs: string;

beforeEach(() => {
  runs = join(tempDir('ccci-warm-record-'), 'runs');
  process.env.CCCI_RUNS_DIR = runs;
});
afterEach(() => {
  for (const key of ['CCCI_RUNS_DIR', 'CCCI_RUN_ID']) {
    if (saved[key] === undefined) delete process.env[key];
    else process.env[key] = saved[key];
  }
});

const DOMAIN = 'warm-demo.ci.example.org';
const record: WarmRecord = {
  ...{ domain: DOMAIN, recipe: 'ccci-demo', version: '0.1.0+1.0', env: 'TYPE=ccci-demo:0.1.0+1.0\nDOMAIN=warm-demo.ci.example.org\n' },
  ...{ snapshot: { kind: 'backup', id: '20261203T120000Z-abcdef' }, health: { path: '/', status: null, timeoutMs: 300_000 } },
  ...{ runId: '1234', pid: 4321, startedAt: '2026-12-03T12:00:00.000Z' },
};

describe('warm app recovery records', () => {
  it('are written whole into <runs dir>/warm (mode 0700), read back exactly, and removed with their snapshot', () => {
    expect(readRecord(DOMAIN)).toBeNull();
    writeRecord(record);
    expect(recordPath(DOMAIN)).toBe(join(runs, 'warm', `${DOMAIN}.json`));
    expect(statSync(join(runs, 'warm')).mode & 0o777).toBe(0o700);
    expect(readRecord(DOMAIN)).toEqual(record);
    mkdirSync(snapshotDir(DOMAIN));
    writeFileSync(join(snapshotDir(DOMAIN), 'vol.tar'), '');
    removeRecord(DOMAIN);
    expect(readRecord(DOMAIN)).toBeNull();
    expect(() => statSync(snapshotDir(DOMAIN))).toThrow(/ENOENT/);
  });

  it('refuse a warm dir another user planted or a symlink in its place, and no run may take its name', () => {
    mkdirSync(join(runs, 'warm'), { recursive: true, mode: 0o700 });
    chownSync(join(runs, 'warm'), 65534, 65534);
    expect(() => ensureWarmDir()).toThrow(/warm record dir .*warm is owned by uid 65534.*\(CCCI_RUNS_DIR\)/);
    rmSync(join(runs, 'warm'), { recursive: true });
    symlinkSync(tempDir('ccci-elsewhere-'), join(runs, 'warm'));
    expect(() => writeRecord(record)).toThrow(/warm record dir .*warm is a symlink/);
    process.env.CCCI_RUN_ID = 'warm';
    expect(() => runId()).toThrow(/CCCI_RUN_ID \(the run id\) must not be "warm"/);
  });

  it('refuse a record that is not JSON, or not of its app, naming the file', () => {
    ensureWarmDir();
    writeFileSync(recordPath(DOMAIN), '{"domain": ');
    expect(() => readRecord(DOMAIN)).toThrow(InputError);
    expect(() => readRecord(DOMAIN)).toThrow(new RegExp(`recovery record ${recordPath(DOMAIN).replace(/[.+]/g, '\\$&')} cannot be read`));
    writeFileSync(recordPath(DOMAIN), JSON.stringify({ ...record, domain: 'other.ci.example.org' }));
    expect(() => readRecord(DOMAIN)).toThrow(/is not one of warm-demo\.ci\.example\.org/);
  });
});
