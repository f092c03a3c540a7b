// The docs say only what the code does:
// - every test docs/concurrency.md (or any doc) cites as `file.test.ts` › "name" exists, by that name;
// - every environment variable lib/ and runner/ read is in docs/concurrency.md's knob table, and
//   every CCCI_* variable that table lists is read somewhere;
// - every `== … ==` and `!! …` line lib/ and runner/ print has an entry in docs/operations.md;
// - docs/api.md names every export of 'cc-ci' and 'cc-ci/native', its signature blocks match the
//   built declarations, and every TypeScript example in docs/api.md and README.md type-checks
//   against the package and runs (in a temp dir: its own lock dir, runs dir, HOME and TMPDIR).
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { blocks, docFiles, prose, readDoc } from '../support/markdown.js';
import { ROOT, tempDir, useHelpers } from '../support/processes.js';

useHelpers();

function sources(...dirs: string[]): { file: string; text: string }[] {
  return dirs.flatMap((dir) =>
    readdirSync(join(ROOT, dir))
      .filter((name) => name.endsWith('.ts'))
      .map((name) => ({ file: `${dir}/${name}`, text: readFileSync(join(ROOT, dir, name), 'utf8') })),
  );
}

const CODE = sources('lib', 'runner', 'runner/commands', 'runner/host', 'runner/run');

describe('tests the docs cite', () => {
  const citations: { doc: string; file: string; name: string }[] = [];
  for (const doc of docFiles()) {
    for (const match of prose(doc).matchAll(/`((?:tests\/)?[\w./-]+\.test\.ts)` › ((?:"[^"]+"(?:, )?)+)/g)) {
      const file = match[1]!.startsWith('tests/') ? match[1]! : `tests/${match[1]}`;
      for (const name of match[2]!.matchAll(/"([^"]+)"/g)) citations.push({ doc, file, name: name[1]! });
    }
  }

  it('finds the failure-mode table’s citations', () => {
    expect(citations.filter((c) => c.doc === 'docs/concurrency.md').length).toBeGreaterThan(30);
  });

  it.each(citations.map((c) => [`${c.doc} → ${c.file} › ${c.name}`, c] as const))('%s', (_label, { file, name }) => {
    let source: string;
    try {
      source = readFileSync(join(ROOT, file), 'utf8');
    } catch {
      throw new Error(`${file} does not exist`);
    }
    const escaped = [name, name.replaceAll("'", "\\'"), name.replaceAll('"', '\\"')];
    const titled = escaped.some((title) =>
      new RegExp(`\\b(it|test|describe)(\\.\\w+)*(\\([^)]*\\))?\\(\\s*['"\`]${title.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}['"\`]`).test(
        source,
      ),
    );
    expect(titled, `no test titled "${name}" in ${file}`).toBe(true);
  });
});

describe('configuration knobs', () => {
  const knobTable = readDoc('docs/concurrency.md').split('## Configuration knobs')[1] ?? '';
  const documented = new Set(
    [...knobTable.matchAll(/^\| ([^|]+) \|/gm)].flatMap((row) => [...row[1]!.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1]!)),
  );

  const read = new Map<string, string>();
  for (const { file, text } of CODE) {
    const code = text.replace(/^\s*(\/\/|\*).*$/gm, ''); // comments do not read variables
    for (const pattern of [
      /process\.env\.([A-Z][A-Z0-9_]*)/g,
      /process\.env\[['"]([A-Z][A-Z0-9_]*)['"]\]/g,
      /\benv\.([A-Z][A-Z0-9_]*)/g,
      /'(CCCI_[A-Z0-9_]+)'/g,
    ]) {
      for (const match of code.matchAll(pattern)) if (!read.has(match[1]!)) read.set(match[1]!, file);
    }
  }

  it('every variable the code reads is in docs/concurrency.md', () => {
    expect(read.size).toBeGreaterThan(15);
    expect([...read].filter(([name]) => !documented.has(name)).map(([name, file]) => `${name} (${file})`)).toEqual([]);
  });

  it('every BENCH_* setting the benches read is in bench/README.md', () => {
    const readme = readDoc('bench/README.md');
    const settings = sources('bench').flatMap(({ text }) => [...text.matchAll(/process\.env\.(BENCH_[A-Z_]+) \?\?/g)].map((m) => m[1]!));
    expect(settings.length).toBeGreaterThan(2);
    expect(settings.filter((name) => !readme.includes(`\`${name}\``))).toEqual([]);
  });

  it('every CCCI_* variable the table lists is read by the code', () => {
    const all = CODE.map(({ text }) => text).join('\n');
    expect([...documented].filter((name) => name.startsWith('CCCI_') && !all.includes(name))).toEqual([]);
  });
});

/** The literal parts of a template literal or string starting at `start` (a quote or backtick), nested templates skipped. */
function literalParts(text: string, start: number): string[] {
  const quote = text[start]!;
  const parts: string[] = [];
  let current = '';
  let i = start + 1;
  while (i < text.length && text[i] !== quote) {
    if (text[i] === '\\') {
      current += text[i + 1];
      i += 2;
    } else if (quote === '`' && text.startsWith('${', i)) {
      parts.push(current);
      current = '';
      let depth = 1;
      i += 2;
      while (i < text.length && depth > 0) {
        if (text[i] === '`') {
          // a nested template: skip it whole
          i++;
          while (i < text.length && text[i] !== '`') i += text[i] === '\\' ? 2 : 1;
        } else if (text[i] === '{') depth++;
        else if (text[i] === '}') depth--;
        i++;
      }
    } else current += text[i++];
  }
  parts.push(current);
  return parts;
}

describe('log lines', () => {
  const lines: { file: string; parts: string[] }[] = [];
  for (const { file, text: raw } of CODE) {
    const text = raw.replace(/^\s*(\/\/|\*).*$/gm, ''); // comments print nothing
    for (const match of text.matchAll(/[`'](== |!! )/g)) {
      const parts = literalParts(text, match.index!)
        .map((part) => part.trim())
        .filter(Boolean);
      lines.push({ file, parts });
    }
  }
  const entries = [...prose('docs/operations.md').matchAll(/``?([^`]+?)``?/g)]
    .map((m) => m[1]!)
    .filter((entry) => /^(== |!! )/.test(entry));

  it('finds the lines the code prints', () => {
    expect(lines.length).toBeGreaterThan(30);
  });

  it('every == … == and !! … line the code prints has an entry in docs/operations.md', () => {
    const covered = (parts: string[]): boolean =>
      entries.some((entry) => {
        let at = 0;
        for (const part of parts) {
          const found = entry.indexOf(part, at);
          if (found < 0) return false;
          at = found + part.length;
        }
        return true;
      });
    expect(lines.filter(({ parts }) => !covered(parts)).map(({ file, parts }) => `${file}: ${parts.join(' … ')}`)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------

const API = 'docs/api.md';
const MODULES = ['errors', 'lock', 'lockfiles', 'janitor', 'lifetime', 'abra-dir', 'run-state', 'naming', 'native'];

function declarations(module: string): string {
  return readFileSync(join(ROOT, 'dist', 'lib', `${module}.d.ts`), 'utf8');
}

/** Comments gone, `export`/`declare` gone, whitespace collapsed, `{ }` spacing made uniform. */
function normalise(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\/\/.*$/gm, '')
    .replace(/\bexport\s+(declare\s+)?/g, '')
    .replace(/\bdeclare\s+/g, '')
    .replace(/\s+/g, ' ')
    .replace(/\{ */g, '{ ')
    .replace(/ *\}/g, ' }')
    .trim();
}

/** A signature block split into top-level statements. */
function statements(block: string): string[] {
  const code = block.replace(/\/\/.*$/gm, '');
  const found: string[] = [];
  let current = '';
  let depth = 0;
  for (const ch of code) {
    current += ch;
    if (ch === '{') depth++;
    if (ch === '}') depth--;
    if (depth === 0 && (ch === ';' || (ch === '}' && /^\s*(interface|class)\b/.test(current)))) {
      if (current.trim()) found.push(current.trim());
      current = '';
    }
  }
  if (current.trim()) found.push(current.trim());
  return found;
}

describe('docs/api.md', () => {
  const apiBlocks = blocks(API).filter((block) => block.lang === 'ts');
  const signatureBlocks = apiBlocks.filter((block) => /^\/\/ lib\/[\w-]+\.ts\s*$/m.test(block.text.split('\n')[0]!));
  const examples = [
    ...apiBlocks.filter((block) => !signatureBlocks.includes(block)),
    ...blocks('README.md').filter((block) => block.lang === 'ts'),
  ];

  it('names every export of cc-ci and cc-ci/native', () => {
    const text = readDoc(API);
    const missing: string[] = [];
    for (const module of MODULES) {
      const dts = declarations(module);
      const names = new Set<string>();
      for (const match of dts.matchAll(/export (?:declare )?(?:function|class|interface|type|const) (\w+)/g)) names.add(match[1]!);
      for (const match of dts.matchAll(/export declare const ([^;=]+);/g))
        for (const name of match[1]!.matchAll(/(\w+):/g)) names.add(name[1]!);
      for (const name of names) if (!new RegExp(`\\b${name}\\b`).test(text)) missing.push(`${module}: ${name}`);
    }
    expect(missing).toEqual([]);
  });

  it('has a signature block for every module, and each matches the built declarations', () => {
    const covered = signatureBlocks.map((block) => /^\/\/ lib\/([\w-]+)\.ts/.exec(block.text)![1]!);
    expect(covered.sort()).toEqual([...MODULES].sort());
    const wrong: string[] = [];
    for (const block of signatureBlocks) {
      const module = /^\/\/ lib\/([\w-]+)\.ts/.exec(block.text)![1]!;
      const dts = normalise(declarations(module));
      for (const statement of statements(block.text)) {
        if (!dts.includes(normalise(statement))) wrong.push(`${API}:${block.line} (${module}): ${normalise(statement)}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('its examples (and README.md’s) type-check against the package and run', { timeout: 180_000 }, () => {
    expect(examples.length).toBeGreaterThanOrEqual(8);
    const dir = tempDir('ccci-doc-examples-');
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(ROOT, join(dir, 'node_modules', 'cc-ci'));
    symlinkSync(join(ROOT, 'node_modules', 'tsx'), join(dir, 'node_modules', 'tsx'));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }));
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2022'],
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules', '@types')],
          strict: true,
          noEmit: true,
          skipLibCheck: true,
        },
        include: ['*.ts'],
      }),
    );
    const files = examples.map((block, index) => {
      const name = `example-${index + 1}.ts`;
      writeFileSync(join(dir, name), `// ${block.file}:${block.line}\n${block.text}\nexport {};\n`);
      return { name, block };
    });
    const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], {
      encoding: 'utf8',
      cwd: dir,
    });
    expect(tsc.stdout + tsc.stderr, 'tsc on the doc examples').toBe('');
    expect(tsc.status).toBe(0);

    for (const { name, block } of files) {
      const sandbox = join(dir, name.replace('.ts', ''));
      for (const sub of ['locks', 'runs', 'home', 'tmp']) mkdirSync(join(sandbox, sub), { recursive: true });
      const run = spawnSync(process.execPath, ['--import', 'tsx', name], {
        cwd: dir,
        encoding: 'utf8',
        timeout: 60_000,
        env: {
          PATH: process.env.PATH,
          HOME: join(sandbox, 'home'),
          TMPDIR: join(sandbox, 'tmp'),
          CCCI_APP_LOCK_DIR: join(sandbox, 'locks'),
          CCCI_RUNS_DIR: join(sandbox, 'runs'),
        },
      });
      expect(
        run.status,
        `${block.file}:${block.line} exited ${run.status} (${run.signal ?? 'no signal'})\n${run.stdout}${run.stderr}`,
      ).toBe(0);
    }
  });
});
