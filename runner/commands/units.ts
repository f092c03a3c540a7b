// `cc-ci units [--dir DIR] [--environment-file FILE]`: install the systemd units that run the janitor and
// warm-reconcile on timers. The templates in the package's systemd/ are the source: this fills in
// absolute paths (node, this package's CLI, the env file) and writes each unit into DIR through a
// temp file and a rename, so systemd never reads half a unit. Its dependencies are imported in
// main, so `--help` loads none of them.
import { parseArgs } from 'node:util';

import { CcciError, InputError } from '../../lib/errors.js';
import { print } from './output.js';

export const usage = `Usage: cc-ci units [--dir DIR] [--environment-file FILE]

Writes the systemd units that run the janitor every 15 minutes and warm-reconcile daily:
cc-ci-janitor.service and .timer, cc-ci-warm-reconcile.service and .timer, from the templates in
the package's systemd/, with this node and this cc-ci as absolute paths. Each replaces any unit of
that name at once (a temp file renamed into place). Then run the systemctl line it prints.

Options:
  --dir DIR                where to write the units (default /etc/systemd/system): an existing
                           directory, not a symlink, owned by this user or root, that no one else
                           can write to
  --environment-file FILE  the EnvironmentFile= of the services (default /etc/cc-ci/env): an
                           absolute path to an existing file only root or this user can write
                           (example: systemd/cc-ci.env of the package)
  -h, --help               this help

Exit codes: 0 written, 1 a unit could not be written, 2 bad input (a flag, a refused dir).`;

export const UNITS = ['cc-ci-janitor.service', 'cc-ci-janitor.timer', 'cc-ci-warm-reconcile.service', 'cc-ci-warm-reconcile.timer'];

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { dir: { type: 'string' }, 'environment-file': { type: 'string' } },
    strict: true,
    allowPositionals: false,
  });
  const [{ assertTrustedDir }, { absoluteDir }, { fileURLToPath }] = await Promise.all([
    import('../../lib/abra-dir.js'),
    import('../../lib/naming.js'),
    import('node:url'),
  ]);
  const dir = absoluteDir('--dir', values.dir ?? '/etc/systemd/system');
  const envFile = absoluteDir('--environment-file', values['environment-file'] ?? '/etc/cc-ci/env');
  // systemd runs these units as root: a unit dir another user could write to, or plant as a
  // symlink, would let them choose what root runs (docs/threat-model.md).
  assertTrustedDir(dir, 'units dir', { owners: 'us-or-root', sticky: false, symlink: false, setting: '--dir', code: 'ERR_CCCI_UNITS_DIR' });
  assertEnvFile(envFile);
  const root = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
  const paths = {
    node: unitPath('node (process.execPath)', process.execPath),
    cli: unitPath('the cc-ci CLI', `${root}/dist/runner/cli.js`),
    docs: unitPath('the cc-ci docs', `${root}/docs`),
    envFile: unitPath('--environment-file', envFile),
  };
  const written = UNITS.map((name) => writeUnit(dir, name, render(`${root}/systemd/${name}`, paths)));
  print(1, [`wrote ${written.length} units (EnvironmentFile=${envFile}):`, ...written.map((path) => `  ${path}`)].join('\n'));
  print(1, 'next: systemctl daemon-reload && systemctl enable --now cc-ci-janitor.timer cc-ci-warm-reconcile.timer');
  return 0;
}

/**
 * Refuses an env file that is missing (the services would fail at every start) or that another
 * user could write: the units run as root with what it sets (NODE_OPTIONS alone runs any code).
 */
function assertEnvFile(path: string): void {
  const { statSync } = process.getBuiltinModule('node:fs');
  const refuse = (why: string): never => {
    throw new InputError(`--environment-file ${path} ${why}`, { code: 'ERR_CCCI_ENV_FILE', path });
  };
  const stat = statSync(path, { throwIfNoEntry: false });
  if (stat === undefined) refuse(`does not exist: write it first (systemd/cc-ci.env of the cc-ci package is an example)`);
  if (!stat!.isFile()) refuse('is not a regular file');
  const euid = process.geteuid?.() ?? 0;
  if (stat!.uid !== euid && stat!.uid !== 0) refuse(`is owned by uid ${stat!.uid}, not by root or this process's uid ${euid}`);
  if ((stat!.mode & 0o022) !== 0)
    refuse(`is writable by others (mode ${(stat!.mode & 0o7777).toString(8)}): the units run as root with it`);
}

/**
 * `path`, if systemd takes it as written: whitespace, quotes, `\`, `%` (a specifier) and `$` would
 * each need escaping in a unit line, and cc-ci never needs them, so they are refused.
 */
function unitPath(what: string, path: string): string {
  if (/[\s"'\\%$;]/.test(path) || path.includes('\0'))
    throw new InputError(
      `${what} ${JSON.stringify(path)} has a character a systemd unit would read differently (space, quote, \\, %, $ or ;)`,
    );
  return path;
}

/** The template at `path` with every `{{name}}` filled in; an unknown name is a bug in the template. */
function render(path: string, values: Record<string, string>): string {
  const { readFileSync } = process.getBuiltinModule('node:fs');
  return readFileSync(path, 'utf8').replace(/\{\{(\w+)\}\}/g, (_, name: string) => {
    if (!Object.hasOwn(values, name)) throw new CcciError('ERR_CCCI_UNIT_TEMPLATE', `${path}: unknown placeholder {{${name}}}`);
    return values[name]!;
  });
}

/** Writes `text` to `dir/name` through a temp file in `dir` and a rename: readers see the old unit or the new one. */
function writeUnit(dir: string, name: string, text: string): string {
  const { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeSync } = process.getBuiltinModule('node:fs');
  const path = `${dir}/${name}`;
  const temp = `${dir}/.${name}.${process.pid}.tmp`;
  // O_EXCL: a file or symlink already at the temp path is never written through.
  const fd = openSync(temp, 'wx', 0o644);
  try {
    try {
      fchmodSync(fd, 0o644); // whatever the umask, as systemd's own units are
      writeSync(fd, text);
      fsyncSync(fd); // the rename must not publish a unit whose bytes are not on disk yet
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
  return path;
}
