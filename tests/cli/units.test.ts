// `cc-ci units`, against the built CLI: the four units it writes pass `systemd-analyze verify` (which
// also checks that ExecStart's binary exists: the reason the units carry absolute paths), say what
// docs/operations.md says, are the templates in systemd/ filled in and nothing else, and replace
// the old ones by a rename. Dirs another user could have planted are refused. And the env file's
// format reads the same in a POSIX shell as the docs promise.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { UNITS } from '../../runner/commands/units.js';
import { CLI, ROOT, cleanup, tempDir } from '../support/processes.js';

afterEach(cleanup);

const SYSTEMD = join(ROOT, 'systemd');

function units(args: string[], cwd = ROOT): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, 'units', ...args], { encoding: 'utf8', timeout: 30_000, cwd });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A units dir and an env file as `cc-ci units` wants them: this user's, 0755 and 0644. */
function world(): { dir: string; envFile: string } {
  const root = tempDir('ccci-units-');
  const dir = join(root, 'system');
  mkdirSync(dir, { mode: 0o755 });
  const envFile = join(root, 'env');
  writeFileSync(envFile, 'HOME=/root\n', { mode: 0o644 });
  return { dir, envFile };
}

function install(): { dir: string; envFile: string; text: (name: string) => string } {
  const { dir, envFile } = world();
  const result = units(['--dir', dir, '--environment-file', envFile]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return { dir, envFile, text: (name) => readFileSync(join(dir, name), 'utf8') };
}

/** `Key=value` settings of one unit file, by key (a key set twice keeps every value). */
function settings(text: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (match) map.set(match[1]!, [...(map.get(match[1]!) ?? []), match[2]!]);
  }
  return map;
}

describe('cc-ci units', () => {
  it('writes the four units, and systemd-analyze verify accepts them without a word', () => {
    const { dir } = install();
    expect(readdirSync(dir).sort()).toEqual([...UNITS].sort());
    // Nothing filtered out of stderr: offline, verify says nothing about anything else.
    const verify = spawnSync('systemd-analyze', ['verify', ...UNITS.map((name) => join(dir, name))], { encoding: 'utf8' });
    expect(verify.stderr).toBe('');
    expect(verify.status).toBe(0);
  });

  it('prints what it wrote and the systemctl line to run next', () => {
    const { dir, envFile } = world();
    const result = units(['--dir', dir, '--environment-file', envFile]);
    expect(result.stdout).toBe(
      [
        `wrote 4 units (EnvironmentFile=${envFile}):`,
        ...UNITS.map((name) => `  ${join(dir, name)}`),
        'next: systemctl daemon-reload && systemctl enable --now cc-ci-janitor.timer cc-ci-warm-reconcile.timer',
        '',
      ].join('\n'),
    );
  });

  it('services: oneshot, the env file, absolute node and cli, after docker, no private view of the filesystem', () => {
    const { envFile, text } = install();
    for (const [unit, verb] of [
      ['cc-ci-janitor.service', 'janitor'],
      ['cc-ci-warm-reconcile.service', 'warm-reconcile'],
    ] as const) {
      const service = settings(text(unit));
      expect(service.get('Type'), unit).toEqual(['oneshot']);
      expect(service.get('EnvironmentFile'), unit).toEqual([envFile]);
      expect(service.get('ExecStart'), unit).toEqual([`${process.execPath} ${CLI} ${verb}`]);
      expect(service.get('After')?.join(' ').split(' '), unit).toContain('docker.service');
      expect(service.get('KillMode'), unit).toEqual(['control-group']);
      expect(service.get('TimeoutStartSec')?.[0], unit).toMatch(/^\d+h$/);
      // Each of these would give the unit its own /tmp, /run or /root: a lock dir there would be
      // another one than the runs', and every lock would look free.
      for (const key of ['PrivateTmp', 'ProtectSystem', 'ProtectHome', 'TemporaryFileSystem', 'PrivateMounts', 'MemoryDenyWriteExecute'])
        expect(service.has(key), `${unit}: ${key}`).toBe(false);
    }
  });

  it('timers: the janitor every 15 minutes, warm-reconcile daily at 04:30, both persistent, as docs/operations.md says', () => {
    const { text } = install();
    const janitor = settings(text('cc-ci-janitor.timer'));
    expect(janitor.get('OnCalendar')).toEqual(['*:0/15']);
    expect(janitor.get('RandomizedDelaySec')).toEqual(['3min']);
    expect(janitor.get('Persistent')).toEqual(['true']);
    const warm = settings(text('cc-ci-warm-reconcile.timer'));
    expect(warm.get('OnCalendar')).toEqual(['*-*-* 04:30:00']);
    expect(warm.get('RandomizedDelaySec')).toEqual(['30min']);
    expect(warm.get('Persistent')).toEqual(['true']);
    for (const timer of [janitor, warm]) expect(timer.get('WantedBy')).toEqual(['timers.target']);
    const operations = readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8');
    for (const said of ['`OnCalendar=*:0/15`', '`RandomizedDelaySec=3min`', '`OnCalendar=*-*-* 04:30:00`', '`RandomizedDelaySec=30min`'])
      expect(operations).toContain(said);
  });

  it('each unit is its template in systemd/ with the placeholders filled in, and nothing else', () => {
    const { envFile, text } = install();
    const filled: Record<string, string> = { node: process.execPath, cli: CLI, docs: join(ROOT, 'docs'), envFile };
    for (const name of UNITS) {
      const template = readFileSync(join(SYSTEMD, name), 'utf8');
      const placeholders = new Set([...template.matchAll(/\{\{(\w+)\}\}/g)].map((match) => match[1]!));
      expect(
        [...placeholders].filter((placeholder) => !(placeholder in filled)),
        name,
      ).toEqual([]);
      expect(text(name), name).toBe(template.replace(/\{\{(\w+)\}\}/g, (_, placeholder: string) => filled[placeholder]!));
    }
  });

  it('a second run replaces each unit by a rename: a reader of the old file keeps it whole, no temp file is left', () => {
    const { dir, envFile, text } = install();
    const path = join(dir, 'cc-ci-janitor.service');
    const fresh = text('cc-ci-janitor.service');
    writeFileSync(path, 'an older unit\n');
    const before = statSync(path).ino;
    const reader = openSync(path, 'r');
    try {
      const again = units(['--dir', dir, '--environment-file', envFile]);
      expect(again.code, again.stderr).toBe(0);
      expect(statSync(path).ino, 'a new inode: renamed into place, not rewritten').not.toBe(before);
      const buffer = Buffer.alloc(64);
      expect(buffer.toString('utf8', 0, readSync(reader, buffer, 0, 64, 0))).toBe('an older unit\n');
    } finally {
      closeSync(reader);
    }
    expect(text('cc-ci-janitor.service')).toBe(fresh);
    expect(readdirSync(dir).sort()).toEqual([...UNITS].sort());
  });

  it.each([
    ['a symlink', (dir: string) => `${dir}-link`, (dir: string) => symlinkSync(dir, `${dir}-link`), /is a symlink owned by uid \d+/],
    ['writable by others', (dir: string) => dir, (dir: string) => chmodSync(dir, 0o777), /is writable by others \(mode 777\)/],
    [
      'writable by others, even sticky',
      (dir: string) => dir,
      (dir: string) => chmodSync(dir, 0o1777),
      /is writable by others \(mode 1777\)/,
    ],
    ['missing', (dir: string) => join(dir, 'nope'), () => {}, /does not exist/],
  ])('refuses a --dir that is %s: exit 2, one line naming --dir, nothing written', (_what, target, plant, why) => {
    const { dir, envFile } = world();
    plant(dir);
    const result = units(['--dir', target(dir), '--environment-file', envFile]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(
      new RegExp(`^cc-ci units: units dir ${target(dir)} ${why.source} \\(--dir\\): refusing to write there\\n$`),
    );
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses a relative --dir or --environment-file, and an env file others could write, naming the flag and the value', () => {
    const { dir, envFile } = world();
    expect(units(['--dir', 'system', '--environment-file', envFile])).toEqual({
      code: 2,
      stdout: '',
      stderr: 'cc-ci units: --dir must be an absolute path, got "system"\n',
    });
    // Run where `env` exists: node itself refuses a missing one (the next test).
    expect(units(['--dir', dir, '--environment-file', 'env'], dirname(envFile)).stderr).toBe(
      'cc-ci units: --environment-file must be an absolute path, got "env"\n',
    );
    chmodSync(envFile, 0o664);
    const writable = units(['--dir', dir, '--environment-file', envFile]);
    expect(writable.code).toBe(2);
    expect(writable.stderr).toBe(
      `cc-ci units: --environment-file ${envFile} is writable by others (mode 664): the units run as root with it\n`,
    );
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses a missing --environment-file, naming it, and writes nothing', () => {
    const { dir, envFile } = world();
    const missing = `${envFile}-missing`;
    const result = units(['--dir', dir, '--environment-file', missing]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `cc-ci units: --environment-file ${missing} does not exist: write it first (systemd/cc-ci.env of the cc-ci package is an example)\n`,
    );
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('the env file, /etc/cc-ci/env', () => {
  // The documented format: KEY=value lines and whole-line # comments, no quotes, spaces, $ or \.
  const LINE = /^[A-Z_][A-Z0-9_]*=[^\s'"$\\`]*$/;

  it('the example, systemd/cc-ci.env, is in the format, and a POSIX shell reads exactly its KEY=value pairs', () => {
    // Every line of the example, the commented-out ones switched on.
    const text = readFileSync(join(SYSTEMD, 'cc-ci.env'), 'utf8');
    const lines = text.split('\n').filter((line) => line !== '' && !/^# /.test(line) && line !== '#');
    const pairs = lines.map((line) => line.replace(/^#/, ''));
    for (const pair of pairs) expect(pair).toMatch(LINE);
    expect(pairs.length).toBeGreaterThan(5);
    const file = join(tempDir('ccci-env-'), 'env');
    writeFileSync(file, `${text}\n${pairs.join('\n')}\n`);
    // How .drone.yml reads it. systemd's EnvironmentFile= cannot be run offline (no systemd as pid
    // 1 here); its parser reads such plain lines alike (systemd.exec(5)), which is why the format
    // allows nothing else.
    const shell = spawnSync('sh', ['-c', 'set -a; . "$1"; set +a; env', 'sh', file], { encoding: 'utf8', env: {} });
    expect(shell.status, shell.stderr).toBe(0);
    const read = new Map(shell.stdout.split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
    for (const pair of pairs) {
      const [key, value] = [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)];
      expect(read.get(key), key).toBe(value);
    }
  });
});
