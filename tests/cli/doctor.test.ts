// `cc-ci doctor` against the real host: the swarm, the Caddy ingress, the test-only abra first on
// PATH, a lock dir and runs dir of the test's own. A healthy host passes every check; each broken
// part fails its own row, and only that row (the checks are independent), with exit 1.
import { chmodSync, lchownSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';

import type { Check } from '../../runner/host/checks.js';
import { KNOWN_VARIABLES } from '../../runner/run/settings-check.js';
import { CLI, ROOT, cleanup, tempDir } from '../support/processes.js';
import { INGRESS_CA, requireSwarm } from '../support/swarm.js';

afterEach(cleanup);

const NOBODY = 65534;

interface Report {
  code: number;
  stdout: string;
  stderr: string;
  /** The rows of the human table: [name, status, detail]. */
  rows: [string, Check['status'], string][];
}

/** A healthy host of the test's own: its env, with a warm app abra knows. */
function healthyHost(): { env: NodeJS.ProcessEnv; root: string; warm: string } {
  const root = tempDir('ccci-doctor-');
  const base = `doctor${Math.random().toString(16).slice(2, 8)}.test`;
  const warm = `warm.${base}`;
  const home = join(root, 'home');
  const runs = join(root, 'runs');
  const locks = join(root, 'locks');
  for (const dir of [home, runs, locks]) mkdirSync(dir, { mode: 0o755 });
  // abra knows an app by its .env in ~/.abra/servers/<server>/: doctor only lists it.
  mkdirSync(join(home, '.abra', 'servers', 'default'), { recursive: true });
  writeFileSync(join(home, '.abra', 'servers', 'default', `${warm}.env`), `TYPE=ccci-demo:0.1.0+1.0\nDOMAIN=${warm}\n`);
  const env: NodeJS.ProcessEnv = {
    PATH: `${join(ROOT, 'tests', 'fixtures', 'abra')}:${process.env.PATH}`,
    HOME: home,
    CCCI_RUNS_DIR: runs,
    CCCI_APP_LOCK_DIR: locks,
    CCCI_BASE_DOMAIN: base,
    CCCI_INGRESS: '127.0.0.1:443',
    CCCI_INGRESS_CA: INGRESS_CA,
    CCCI_WARM_APPS: warm,
    DRONE_RUNNER_CAPACITY: '1',
  };
  return { env, root, warm };
}

async function doctor(env: NodeJS.ProcessEnv, args: string[] = []): Promise<Report> {
  const result = await execa(process.execPath, [CLI, 'doctor', ...args], { env, extendEnv: false, reject: false, timeout: 60_000 });
  const rows = result.stdout
    .split('\n')
    .map((line) => /^(\S.*?) +(pass|warn|fail) {2}(.*)$/.exec(line))
    .filter((match) => match !== null)
    .map((match) => [match[1]!, match[2] as Check['status'], match[3]!] as [string, Check['status'], string]);
  return { code: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr, rows };
}

/** The rows that are not a pass, as [name, status]. */
const notPassing = (report: Report): [string, string][] =>
  report.rows.filter(([, status]) => status !== 'pass').map(([name, status]) => [name, status]);

const ABRA_STAND_IN: [string, string] = ['abra', 'warn'];

/** The one row named `name`, failing; every other row as on a healthy host. */
function expectOnlyFailure(report: Report, name: string, detail: RegExp): void {
  expect(notPassing(report).sort(), report.stdout).toEqual([ABRA_STAND_IN, [name, 'fail']].sort());
  expect(report.rows.find(([row]) => row === name)![2]).toMatch(detail);
  expect(report.code, report.stderr).toBe(1);
  expect(report.stderr).toBe(`cc-ci doctor: 1 check failed: ${name}\n`.trimEnd());
}

describe('cc-ci doctor on the real host', () => {
  if (!requireSwarm()) return;

  it('passes every check on a healthy host (abra a warn: the stand-in), exit 0; the JSON form agrees', async () => {
    const { env, warm } = healthyHost();
    const human = await doctor(env);
    expect(human.rows.map(([name]) => name)).toEqual([
      'node',
      'addon',
      'docker',
      'abra',
      'lock dir',
      'runs dir',
      'settings',
      'lock backend',
      'ingress',
      'warm apps',
      'memory',
      'disk',
    ]);
    expect(notPassing(human), human.stdout).toEqual([ABRA_STAND_IN]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stderr).toBe('');
    expect(human.stdout).toMatch(/\nabra +warn {2}abra version 0\.0\.0-ccci-test-fixture: the test-only stand-in, not abra\n +fix: /);
    expect(human.stdout.split('\n').at(-1)).toBe('doctor: 11 pass, 1 warn, 0 fail');
    expect(human.rows.find(([name]) => name === 'ingress')![2]).toMatch(/certificate verified, issued by Caddy Local Authority/);
    expect(human.rows.find(([name]) => name === 'warm apps')![2]).toContain(warm);

    const json = await doctor(env, ['--json']);
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout) as { ok: boolean; checks: Check[] };
    expect(parsed.ok).toBe(true);
    expect(parsed.checks.map(({ name, status }) => [name, status])).toEqual(human.rows.map(([name, status]) => [name, status]));
    for (const check of parsed.checks) expect(check.fix === undefined, check.name).toBe(check.status === 'pass');
  });

  it('an unknown CCCI_* name is a warn naming it, and no failure: exit 0', async () => {
    const { env } = healthyHost();
    const report = await doctor({ ...env, CCCI_DEADLINE_SECOND: '60' });
    expect(notPassing(report)).toEqual([ABRA_STAND_IN, ['unknown settings', 'warn']]);
    expect(report.rows.find(([name]) => name === 'unknown settings')![2]).toBe('cc-ci reads none of CCCI_DEADLINE_SECOND');
    expect(report.code).toBe(0);
  });

  it('docker: a DOCKER_HOST nothing listens on fails the docker row', async () => {
    const { env } = healthyHost();
    const report = await doctor({ ...env, DOCKER_HOST: 'unix:///nonexistent.sock', DRONE_RUNNER_CAPACITY: '' });
    expectOnlyFailure(report, 'docker', /^docker does not answer at \/nonexistent\.sock: .*ENOENT/);
  });

  it('abra: a PATH without abra fails the abra row', async () => {
    const { env } = healthyHost();
    const report = await doctor({ ...env, PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CCCI_WARM_APPS: '' });
    expect(notPassing(report), report.stdout).toEqual([['abra', 'fail']]);
    expect(report.rows.find(([name]) => name === 'abra')![2]).toBe('abra is not installed or not on PATH (needed for: abra --version)');
    expect(report.code).toBe(1);
  });

  it('lock dir: mode 0777 without the sticky bit fails with the lock code’s own refusal', async () => {
    const { env } = healthyHost();
    chmodSync(env.CCCI_APP_LOCK_DIR!, 0o777);
    const report = await doctor(env);
    expectOnlyFailure(report, 'lock dir', /is writable by others without the sticky bit \(mode 777\) \(CCCI_APP_LOCK_DIR\)$/);
  });

  it('runs dir: group-writable fails', async () => {
    const { env } = healthyHost();
    chmodSync(env.CCCI_RUNS_DIR!, 0o775);
    const report = await doctor(env);
    expectOnlyFailure(report, 'runs dir', /^runs dir \S+ is writable by others \(mode 775\) \(CCCI_RUNS_DIR\): refusing to write there$/);
  });

  it('runs dir: a symlink another user owns fails', async () => {
    const { env, root } = healthyHost();
    const link = join(root, 'runs-link');
    symlinkSync(env.CCCI_RUNS_DIR!, link);
    lchownSync(link, NOBODY, NOBODY);
    const report = await doctor({ ...env, CCCI_RUNS_DIR: link });
    expectOnlyFailure(report, 'runs dir', new RegExp(`^runs dir ${link} is a symlink owned by uid ${NOBODY} \\(CCCI_RUNS_DIR\\)`));
  });

  it('settings: CCCI_CONVERGE_TIMEOUT_SECONDS=abc fails a row naming the variable and its value', async () => {
    const { env } = healthyHost();
    const report = await doctor({ ...env, CCCI_CONVERGE_TIMEOUT_SECONDS: 'abc' });
    expectOnlyFailure(
      report,
      'setting CCCI_CONVERGE_TIMEOUT_SECONDS',
      /^CCCI_CONVERGE_TIMEOUT_SECONDS must be a whole number of seconds, got "abc"$/,
    );
  });

  it('ingress: a closed port fails, refused', async () => {
    const { env } = healthyHost();
    const port = await closedPort();
    const report = await doctor({ ...env, CCCI_INGRESS: `127.0.0.1:${port}` });
    expectOnlyFailure(report, 'ingress', new RegExp(`^127\\.0\\.0\\.1:${port} \\(SNI doctor-check\\.\\S+\\): ECONNREFUSED`));
  });

  it('ingress: without CCCI_INGRESS_CA the real ingress’s certificate does not verify', async () => {
    const { env } = healthyHost();
    const report = await doctor({ ...env, CCCI_INGRESS_CA: '' });
    expectOnlyFailure(report, 'ingress', /: the certificate does not verify: UNABLE_TO_GET_ISSUER_CERT_LOCALLY: /);
  });

  it('warm apps: an app abra does not know fails, named', async () => {
    const { env, warm } = healthyHost();
    const missing = `gone.${env.CCCI_BASE_DOMAIN}`;
    const report = await doctor({ ...env, CCCI_WARM_APPS: `${warm},${missing}` });
    expectOnlyFailure(report, 'warm apps', new RegExp(`^no app on server default for ${missing.replaceAll('.', '\\.')}$`));
  });

  it('capacity: DRONE_RUNNER_CAPACITY=100000 is out of range: a fail row', async () => {
    const { env } = healthyHost();
    const report = await doctor({ ...env, DRONE_RUNNER_CAPACITY: '100000' });
    expectOnlyFailure(report, 'capacity', /^DRONE_RUNNER_CAPACITY must be a whole number from 1 to 1000, got "100000"$/);
  });
});

describe('cc-ci doctor input', () => {
  it('an unknown flag exits 2 with one line naming it', async () => {
    const result = await execa(process.execPath, [CLI, 'doctor', '--bogus'], { reject: false });
    expect(result.exitCode).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr.split('\n')).toHaveLength(1);
    expect(result.stderr).toContain("'--bogus'");
  });

  it('knows every CCCI_* variable docs/concurrency.md lists, so none is called unknown', () => {
    const table = readFileSync(join(ROOT, 'docs', 'concurrency.md'), 'utf8').split('## Configuration knobs')[1]!;
    const documented = new Set(
      [...table.matchAll(/^\| ([^|]+) \|/gm)].flatMap((row) => [...row[1]!.matchAll(/`(CCCI_[A-Z0-9_]+)`/g)].map((m) => m[1]!)),
    );
    expect([...KNOWN_VARIABLES].sort()).toEqual([...documented].sort());
  });
});

/** A local TCP port nothing listens on: one the kernel just handed out and took back. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
