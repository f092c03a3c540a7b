// Every command's `--help` lists, in its Environment section, every environment variable the
// command reads, each with its default; `cc-ci --help` does the same for the CLI's own code. The
// commands come from runner/cli.ts's COMMANDS table, so a command added there is checked too.
//
// Which variables count: those cc-ci's own code reads, whatever it does with the value. That is
// `process.env.NAME`, `env.NAME` or `env['NAME']` where `env` is a `NodeJS.ProcessEnv` parameter,
// a name passed as a string literal to a function that reads `env[param]` (lifetime.ts's
// wholeSeconds), and HOME for `homedir()`. A read that only hands the value on with a fallback
// (PATH, HOME, LANG for the recipe's hooks) counts: the fallback is cc-ci's. A variable only a
// child reads, from the environment it inherits whole (abra, docker, git, the command `cc-ci
// step` runs), does not, unless cc-ci reads it too (ABRA_DIR, DOCKER_HOST). Writes (`env.X = …`,
// `delete env.X`) are not reads. An alias (`const e = process.env`) or a destructuring of
// process.env is not followed: the code reads through `process.env` or a `NodeJS.ProcessEnv`
// parameter.
//
// What a command reads is found in the TypeScript syntax trees of lib/ and runner/, per top-level
// declaration rather than per file: from the command module's load and its `main`, through every
// name a reached declaration uses (its own module's declarations, static imports, and the names it
// takes from a dynamic `import(...)`). Per file would be too coarse: `warm-reconcile` imports
// convergeTimeoutMs from runner/run/config.ts but never parseRunConfig's RECIPE, REF or PR.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

import ts from 'typescript';
import { describe, expect, it } from 'vitest';

import { readDoc } from '../support/markdown.js';
import { CLI, ROOT } from '../support/processes.js';

interface Module {
  /** Top-level declarations by name, types included (a value import may name one). */
  decls: Map<string, ts.Node>;
  /** What runs when the module is imported: statements and non-function initializers. */
  onLoad: ts.Node[];
  /** Each imported local name: the module (ROOT-relative .ts) and the name it exports. */
  imports: Map<string, { file: string; name: string }>;
  /** Functions that read `env[param]`: the parameter's position. */
  envNameParams: Map<string, number>;
}

const modules = new Map<string, Module>();

/** `./x.js` from `file` as a ROOT-relative .ts path; null for a package or node: builtin. */
function resolveSpecifier(file: string, specifier: string): string | null {
  if (!specifier.startsWith('.')) return null;
  const target = relative(ROOT, resolve(dirname(join(ROOT, file)), specifier.replace(/\.js$/, '.ts')));
  if (!existsSync(join(ROOT, target))) throw new Error(`${file}: cannot resolve ${specifier}`);
  return target;
}

/** `process.env`, or an identifier bound to a `NodeJS.ProcessEnv` parameter of an enclosing function. */
function isProcessEnv(node: ts.Expression): boolean {
  if (ts.isPropertyAccessExpression(node)) return node.getText() === 'process.env';
  if (!ts.isIdentifier(node)) return false;
  for (let at: ts.Node | undefined = node; at; at = at.parent) {
    if (!ts.isFunctionLike(at)) continue;
    const param = at.parameters.find((p) => ts.isIdentifier(p.name) && p.name.text === node.text);
    if (param) return param.type?.getText() === 'NodeJS.ProcessEnv';
  }
  return false;
}

function descendants(node: ts.Node, visit: (node: ts.Node) => void): void {
  visit(node);
  node.forEachChild((child) => descendants(child, visit));
}

/** The names `const a = …` or `const { a, b: c } = …` binds. */
function boundNames(name: ts.BindingName): string[] {
  if (ts.isIdentifier(name)) return [name.text];
  return name.elements.flatMap((element) => (ts.isOmittedExpression(element) ? [] : boundNames(element.name)));
}

function load(file: string): Module {
  const cached = modules.get(file);
  if (cached) return cached;
  const source = ts.createSourceFile(file, readFileSync(join(ROOT, file), 'utf8'), ts.ScriptTarget.Latest, true);
  const mod: Module = { decls: new Map(), onLoad: [], imports: new Map(), envNameParams: new Map() };
  for (const statement of source.statements) {
    if (ts.isImportDeclaration(statement)) {
      const target = resolveSpecifier(file, (statement.moduleSpecifier as ts.StringLiteral).text);
      const clause = statement.importClause;
      if (target === null || !clause || clause.isTypeOnly) continue;
      const bindings = clause.namedBindings;
      if (bindings && ts.isNamedImports(bindings)) {
        for (const spec of bindings.elements) {
          if (!spec.isTypeOnly) mod.imports.set(spec.name.text, { file: target, name: (spec.propertyName ?? spec.name).text });
        }
      } else if (bindings || clause.name) {
        throw new Error(`${file}: only named imports are followed, not ${statement.getText()}`);
      }
    } else if (ts.isFunctionDeclaration(statement) || ts.isClassDeclaration(statement)) {
      if (statement.name) mod.decls.set(statement.name.text, statement);
    } else if (ts.isInterfaceDeclaration(statement) || ts.isTypeAliasDeclaration(statement) || ts.isEnumDeclaration(statement)) {
      mod.decls.set(statement.name.text, statement);
    } else if (ts.isVariableStatement(statement)) {
      for (const decl of statement.declarationList.declarations) {
        for (const name of boundNames(decl.name)) mod.decls.set(name, decl);
        const init = decl.initializer;
        if (init && !ts.isArrowFunction(init) && !ts.isFunctionExpression(init)) mod.onLoad.push(decl);
      }
    } else if (ts.isExportDeclaration(statement) && statement.moduleSpecifier) {
      throw new Error(`${file}: re-exports are not followed: ${statement.getText()}`);
    } else {
      mod.onLoad.push(statement);
    }
  }
  for (const [name, decl] of mod.decls) {
    if (!ts.isFunctionDeclaration(decl)) continue;
    descendants(decl, (node) => {
      if (!ts.isElementAccessExpression(node) || !isProcessEnv(node.expression) || !ts.isIdentifier(node.argumentExpression)) return;
      const key = node.argumentExpression.text;
      const index = decl.parameters.findIndex((p) => ts.isIdentifier(p.name) && p.name.text === key);
      if (index !== -1) mod.envNameParams.set(name, index);
    });
  }
  modules.set(file, mod);
  return mod;
}

/** Whether `node` is written to (`x = …`, `delete x`), not read. */
function isWrite(node: ts.Node): boolean {
  const parent = node.parent;
  if (ts.isDeleteExpression(parent)) return true;
  return ts.isBinaryExpression(parent) && parent.left === node && parent.operatorToken.kind === ts.SyntaxKind.EqualsToken;
}

/** Every variable read from where `file`'s import and `entry` reach, each with where it is read; never into `boundary`. */
function variablesRead(file: string, entry: string | null, boundary: Set<string> = new Set()): Map<string, string> {
  const found = new Map<string, string>();
  const seen = new Set<ts.Node>();
  const loaded = new Set<string>();
  const todo: { file: string; node: ts.Node }[] = [];
  const loadModule = (target: string): Module => {
    const mod = load(target);
    if (!loaded.has(target)) {
      loaded.add(target);
      for (const node of mod.onLoad) todo.push({ file: target, node });
    }
    return mod;
  };
  const reach = (target: string, name: string, from: string): void => {
    if (boundary.has(target)) return;
    const decl = loadModule(target).decls.get(name);
    if (!decl) throw new Error(`${from}: ${target} declares no ${name} (a re-export or an export this test cannot follow)`);
    todo.push({ file: target, node: decl });
  };
  loadModule(file);
  if (entry !== null) reach(file, entry, file);
  while (todo.length > 0) {
    const { file: at, node: root } = todo.pop()!;
    if (seen.has(root)) continue;
    seen.add(root);
    const mod = load(at);
    const where = (node: ts.Node): string => `${at}:${ts.getLineAndCharacterOfPosition(node.getSourceFile(), node.getStart()).line + 1}`;
    const note = (name: string, node: ts.Node): void => {
      if (!found.has(name)) found.set(name, where(node));
    };
    const identifiers = new Set<string>();
    const dynamic: string[] = [];
    descendants(root, (node) => {
      if (ts.isIdentifier(node)) identifiers.add(node.text);
      if (
        ts.isPropertyAccessExpression(node) &&
        isProcessEnv(node.expression) &&
        /^[A-Z][A-Z0-9_]*$/.test(node.name.text) &&
        !isWrite(node)
      )
        note(node.name.text, node);
      if (
        ts.isElementAccessExpression(node) &&
        isProcessEnv(node.expression) &&
        ts.isStringLiteral(node.argumentExpression) &&
        !isWrite(node)
      )
        note(node.argumentExpression.text, node);
      if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
        const target = resolveSpecifier(at, (node.arguments[0] as ts.StringLiteral).text);
        if (target !== null) dynamic.push(target);
      }
      if (ts.isCallExpression(node) && ts.isIdentifier(node.expression)) {
        const callee = node.expression.text;
        if (callee === 'homedir') note('HOME', node);
        const local = mod.envNameParams.get(callee);
        const imported = mod.imports.get(callee);
        const index = local ?? (imported ? load(imported.file).envNameParams.get(imported.name) : undefined);
        const arg = index === undefined ? undefined : node.arguments[index];
        if (arg && ts.isStringLiteral(arg)) note(arg.text, arg);
      }
    });
    for (const name of identifiers) {
      if (mod.decls.has(name)) reach(at, name, at);
      const imported = mod.imports.get(name);
      if (imported) reach(imported.file, imported.name, at);
    }
    // A dynamic import's names are the ones destructured from it in the same declaration; with
    // none (`() => import(...)`), all of the module.
    for (const target of dynamic) {
      if (boundary.has(target)) continue;
      const decls = [...loadModule(target).decls.keys()];
      const used = decls.filter((name) => identifiers.has(name));
      for (const name of used.length > 0 ? used : decls) reach(target, name, at);
    }
  }
  return found;
}

/** runner/cli.ts's COMMANDS table: each command and the module its `load` imports. */
function commandTable(): Map<string, string> {
  const cli = 'runner/cli.ts';
  const source = ts.createSourceFile(cli, readFileSync(join(ROOT, cli), 'utf8'), ts.ScriptTarget.Latest, true);
  const table = new Map<string, string>();
  descendants(source, (node) => {
    if (!ts.isVariableDeclaration(node) || node.name.getText() !== 'COMMANDS') return;
    for (const entry of (node.initializer as ts.ObjectLiteralExpression).properties) {
      descendants(entry, (inner) => {
        if (ts.isCallExpression(inner) && inner.expression.kind === ts.SyntaxKind.ImportKeyword)
          table.set(
            (entry.name as ts.Identifier | ts.StringLiteral).text,
            resolveSpecifier(cli, (inner.arguments[0] as ts.StringLiteral).text)!,
          );
      });
    }
  });
  return table;
}

/** The Environment section's rows: each variable named in the first column, with the row's whole text. */
function environmentRows(help: string): Map<string, string> {
  const section = help.split('\n\n').find((paragraph) => paragraph.startsWith('Environment:\n')) ?? '';
  const rows = new Map<string, string>();
  let current: string | null = null;
  for (const line of section.split('\n').slice(1)) {
    const row = /^ {2}([A-Z][A-Z0-9_]*) {2,}\S/.exec(line);
    if (row) {
      current = row[1]!;
      rows.set(current, line);
    } else if (current !== null && /^ {3,}\S/.test(line)) {
      rows.set(current, `${rows.get(current)}\n${line}`);
    } else {
      throw new Error(`not an Environment row: ${JSON.stringify(line)}`);
    }
  }
  return rows;
}

function help(args: string[]): string {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: ROOT });
  if (result.status !== 0) throw new Error(`cc-ci ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  return result.stdout;
}

const COMMANDS = commandTable();
const CASES: { label: string; args: string[]; read: Map<string, string> }[] = [
  // The CLI's own code: the command modules are the commands' own --help's business.
  { label: 'cc-ci', args: ['--help'], read: variablesRead('runner/cli.ts', null, new Set(COMMANDS.values())) },
  ...[...COMMANDS].map(([name, file]) => ({ label: `cc-ci ${name}`, args: [name, '--help'], read: variablesRead(file, 'main') })),
];
const DEFAULT = /\((default[: ][^)]+|required)\)/;

describe('each --help lists the variables it reads', () => {
  it('finds the commands and what they read', () => {
    expect([...COMMANDS.keys()]).toEqual(expect.arrayContaining(['janitor', 'locks', 'run', 'step', 'warm-reconcile']));
    const run = CASES.find((c) => c.label === 'cc-ci run')!.read;
    // One of each kind of read: env.X, process.env.X, a literal passed to wholeSeconds, homedir().
    expect([...run.keys()]).toEqual(expect.arrayContaining(['RECIPE', 'CCCI_APP_LOCK_DIR', 'CCCI_TEARDOWN_BUDGET_SECONDS', 'HOME']));
  });

  it.each(CASES)(
    '$label --help: every variable it reads has a row with its default, and every row is one it reads',
    ({ label, args, read }) => {
      const rows = environmentRows(help(args));
      const problems: string[] = [];
      for (const [name, where] of read) {
        const row = rows.get(name);
        if (row === undefined) problems.push(`${label} --help: ${name} (read at ${where}) is not in its Environment section`);
        else if (!DEFAULT.test(row)) problems.push(`${label} --help: ${name}'s row gives no "(default …)" or "(required)"`);
      }
      for (const name of rows.keys()) if (!read.has(name)) problems.push(`${label} --help: lists ${name}, which it never reads`);
      expect(problems).toEqual([]);
    },
  );

  it('docs/concurrency.md#configuration-knobs has a row for every variable a command reads', () => {
    const knobs = readDoc('docs/concurrency.md').split('## Configuration knobs')[1] ?? '';
    const documented = new Set(
      [...knobs.matchAll(/^\| ([^|]+) \|/gm)].flatMap((row) => [...row[1]!.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1]!)),
    );
    const missing = CASES.flatMap(({ label, read }) =>
      [...read.keys()].filter((name) => !documented.has(name)).map((name) => `${label}: ${name}`),
    );
    expect(missing).toEqual([]);
  });
});
