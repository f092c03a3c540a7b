// The CLI's own surface, against the built CLI (`node dist/runner/cli.js`, `npm run compile` first):
// --version, the --help overview and its summaries, each command's usage layout, and what a start
// loads (the start-up speed itself is `npm run bench cli`).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterAll, describe, expect, it } from 'vitest';

import { STAGES } from '../../runner/run/stages.js';
import { CLI, ROOT } from '../support/processes.js';

const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

function cc(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; nodeArgs?: string[] } = {},
): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [...(options.nodeArgs ?? []), CLI, ...args], {
    encoding: 'utf8',
    cwd: ROOT,
    env: { ...process.env, ...options.env },
    timeout: 30_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The command modules: every runner/commands/*.ts that exports `usage` and `main`. */
const MODULES = readdirSync(join(ROOT, 'runner', 'commands'))
  .filter((file) => file.endsWith('.ts'))
  .filter((file) => {
    const text = readFileSync(join(ROOT, 'runner', 'commands', file), 'utf8');
    return /^export const usage\b/m.test(text) && /^export async function main\b/m.test(text);
  })
  .map((file) => file.slice(0, -'.ts'.length))
  .sort();

/** The overview's command rows: [name, summary, the column the summary starts at]. */
function commandRows(overview: string): [string, string, number][] {
  const section = overview.split('\nCommands:\n')[1]?.split('\n\n')[0] ?? '';
  return section.split('\n').map((line) => {
    const match = /^ {2}([a-z][a-z-]*)( {2,})(\S.*)$/.exec(line);
    if (!match) throw new Error(`not a command row: ${JSON.stringify(line)}`);
    return [match[1]!, match[3]!, 2 + match[1]!.length + match[2]!.length];
  });
}

// A summary that ends on one of these was cut off mid-sentence.
const DANGLING = new Set(['a', 'an', 'the', 'of', 'to', 'and', 'or', 'in', 'on', 'for', 'with', 'by', 'its', 'their', 'never', 'not']);

/** Why a summary breaks the style rule, or null: a capitalised imperative verb first, no trailing period, not cut off. */
function styleProblem(summary: string): string | null {
  if (!/^[A-Z][a-z]+ /.test(summary)) return 'does not start with a capitalised word';
  const first = summary.split(' ')[0]!;
  if (/[^s]s$|ed$/.test(first)) return `starts with "${first}", not an imperative verb`;
  if (/[.;:,]$/.test(summary)) return 'ends with punctuation';
  const last = summary.split(/\s+/).at(-1)!.toLowerCase();
  if (DANGLING.has(last) || /['’]s?$/.test(last)) return `ends mid-sentence ("${last}")`;
  if ((summary.match(/\(/g) ?? []).length !== (summary.match(/\)/g) ?? []).length) return 'has unbalanced parentheses';
  return null;
}

describe('cc-ci --version', () => {
  it.each(['--version', '-V'])('%s prints the version from package.json and exits 0', (flag) => {
    const result = cc([flag]);
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(`cc-ci ${PACKAGE.version}\n`);
    expect(result.code).toBe(0);
  });
});

describe('cc-ci --help', () => {
  const help = cc(['--help']);

  it('exits 0 and prints the overview on stdout; no command at all prints it and exits 2', () => {
    expect(help.code).toBe(0);
    expect(help.stderr).toBe('');
    expect(help.stdout.split('\n')[0]).toBe('Usage: cc-ci <command> [options]');
    expect(help.stdout).toMatch(/^ {2}-V, --version +\S/m);
    const bare = cc([]);
    expect(bare.code).toBe(2);
    expect(bare.stdout).toBe(help.stdout);
    expect(cc(['-h']).stdout).toBe(help.stdout);
  });

  it('lists every command module, each with a summary, the summaries in one column', () => {
    const rows = commandRows(help.stdout);
    expect(rows.map(([name]) => name)).toEqual(MODULES);
    expect(new Set(rows.map(([, , column]) => column)).size, 'the names are padded to one width').toBe(1);
    for (const [name, summary] of rows) expect(summary, name).not.toBe('');
  });

  it.each(commandRows(help.stdout))('the summary of %s follows the style rule', (name, summary, column) => {
    expect(styleProblem(summary), `${name}: ${JSON.stringify(summary)}`).toBeNull();
    expect(column + summary.length, `${name}: its overview line fits in 100 columns`).toBeLessThanOrEqual(100);
  });

  it('refuses an unknown command with exit 2, the overview on stderr', () => {
    const result = cc(['deploy']);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(`cc-ci: unknown command "deploy"\n\n${help.stdout}`);
  });
});

describe('each command --help', () => {
  it.each(MODULES)('%s: one layout (Usage, description, Options with -h, Environment, Exit codes)', (name) => {
    const result = cc([name, '--help']);
    expect(result.code).toBe(0);
    expect(cc([name, '-h']).stdout).toBe(result.stdout);
    const text = result.stdout.replace(/\n$/, '');
    const paragraphs = text.split('\n\n');
    expect(paragraphs[0]).toMatch(new RegExp(`^Usage: cc-ci ${name}( |$)`));
    expect(paragraphs[1], 'a description follows the usage line').toMatch(/^[A-Z]/);
    // The sections, in this order: Options (always), Environment (when it reads any), Exit codes.
    const heads = paragraphs.map((p) => /^(Options|Environment|Exit codes):/.exec(p)?.[1]).filter(Boolean);
    expect(heads[0]).toBe('Options');
    expect(heads.at(-1)).toBe('Exit codes');
    expect(heads.filter((head) => head !== 'Environment')).toEqual(['Options', 'Exit codes']);
    const options = paragraphs.find((p) => p.startsWith('Options:\n'))!;
    expect(options).toMatch(/^ {2}-h, --help +this help$/m);
    for (const flag of paragraphs[0]!.match(/--[a-z][a-z-]*/g) ?? [])
      expect(options, `${name}: ${flag} is described`).toMatch(new RegExp(`^ {2}${flag}\\b`, 'm'));
    for (const line of text.split('\n')) expect(line.length, `${name}: ${line}`).toBeLessThanOrEqual(100);
  });

  // The variables each command reads: tests/docs/help-env.test.ts.
  it('run: its --help names the stages', () => {
    expect(cc(['run', '--help']).stdout).toContain(STAGES.join(','));
  });
});

describe('what a start loads', () => {
  // An ESM resolve hook, registered with --import, logs every module the CLI imports (not node:*).
  const dir = mkdtempSync(join(tmpdir(), 'ccci-cli-test-'));
  const lockDir = join(dir, 'locks'); // empty
  mkdirSync(lockDir);
  writeFileSync(
    join(dir, 'hooks.mjs'),
    `import { writeSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  if (!result.url.startsWith('node:')) writeSync(2, 'IMPORT ' + result.url + '\\n');
  return result;
}
`,
  );
  writeFileSync(
    join(dir, 'register.mjs'),
    `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});\n`,
  );
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function imports(args: string[]): string[] {
    const result = cc(args, { nodeArgs: ['--import', pathToFileURL(join(dir, 'register.mjs')).href], env: { CCCI_APP_LOCK_DIR: lockDir } });
    expect(result.code, result.stderr).toBe(0);
    const root = pathToFileURL(join(ROOT, '/')).href;
    const urls = result.stderr
      .split('\n')
      .filter((line) => line.startsWith('IMPORT '))
      .map((line) => line.slice('IMPORT '.length).replace(root, ''));
    return [...new Set(urls)].sort(); // the hook sees each import statement, so a module once per importer
  }

  it.each(['--version', '--help', 'locks --help', 'run --help'])('%s loads only the CLI (and that command module)', (line) => {
    const args = line.split(' ');
    const own = args.length > 1 ? [`dist/runner/commands/${args[0]}.js`] : [];
    const loaded = imports(args);
    expect(loaded.filter((url) => !url.startsWith('dist/lib/errors.js'))).toEqual(
      ['dist/runner/cli.js', ...own, 'dist/runner/commands/output.js'].sort(),
    );
  });

  it('locks loads lib/lockfiles.js and the addon, and nothing of runner/host, runner/run or execa', () => {
    const loaded = imports(['locks']);
    expect(loaded).toContain('dist/lib/lockfiles.js');
    expect(loaded).toContain('dist/lib/native.js');
    expect(loaded.filter((url) => /runner\/(host|run)\/|node_modules\/execa\//.test(url))).toEqual([]);
  });
});
