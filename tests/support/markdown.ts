// Reading the repository's Markdown for the doc checkers: which files, their fenced blocks, their
// links and headings, and a small shell tokenizer for the commands in them.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import { ROOT } from './processes.js';

/** The docs the checkers cover, relative to the repository root. */
export function docFiles(): string[] {
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`);
  return ['README.md', ...docs, 'bench/README.md'].filter((file) => existsSync(join(ROOT, file)));
}

export function readDoc(file: string): string {
  return readFileSync(join(ROOT, file), 'utf8');
}

export interface Block {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  text: string;
}

/** Every fenced code block (``` only; an indented fence inside a list item counts too). */
export function blocks(file: string): Block[] {
  const found: Block[] = [];
  const lines = readDoc(file).split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const indent = open[1]!.length;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]!); j++)
      body.push(lines[j]!.slice(Math.min(indent, lines[j]!.length - lines[j]!.trimStart().length)));
    found.push({ file, line: i + 1, lang: open[2]!, text: body.join('\n') });
    i = j;
  }
  return found;
}

/** The prose of a doc: everything outside fenced blocks. */
export function prose(file: string): string {
  return readDoc(file).replace(/^\s*```[\s\S]*?^\s*```\s*$/gm, '');
}

/** GitHub's anchor for a heading. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

export function headings(file: string): Set<string> {
  return new Set(
    prose(file)
      .split('\n')
      .filter((line) => /^#{1,6} /.test(line))
      .map((line) => slug(line.replace(/^#+ /, ''))),
  );
}

export interface Link {
  file: string;
  target: string;
  line: number;
}

/** Markdown links `[text](target)` in the prose, minus absolute URLs. */
export function links(file: string): Link[] {
  const found: Link[] = [];
  prose(file)
    .split('\n')
    .forEach((text, index) => {
      for (const match of text.matchAll(/\[[^\]]*\]\(([^)\s]+)\)/g)) {
        const target = match[1]!;
        if (!/^[a-z]+:/.test(target)) found.push({ file, target, line: index + 1 });
      }
    });
  return found;
}

export type Token = { word: string } | { op: string };

/**
 * Splits a shell command line into words and operators (`|`, `||`, `&&`, `;`, `&`, redirections
 * such as `2>/dev/null`, which come out as one op). Quotes are removed; `$VAR` is kept as text.
 */
export function tokenize(line: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === ' ' || c === '\t') {
      i++;
      continue;
    }
    if (c === '#') break; // a comment (only at the start of a word)
    const rest = line.slice(i);
    const list = /^(\|\||&&|\||;|&)/.exec(rest);
    if (list) {
      tokens.push({ op: list[0] });
      i += list[0].length;
      continue;
    }
    const redirection = /^\d*(>>|>|<)(&\d+|[^\s|;&<>]*)/.exec(rest);
    if (redirection) {
      i += redirection[0].length;
      let target = redirection[2]!;
      if (target === '') {
        while (line[i] === ' ') i++;
        const next = /^[^\s|;&<>]*/.exec(line.slice(i))![0];
        target = next;
        i += next.length;
      }
      tokens.push({ op: `${redirection[1]}${target}` });
      continue;
    }
    let word = '';
    while (i < line.length && !/[\s|;&<>]/.test(line[i]!)) {
      const ch = line[i]!;
      if (ch === "'") {
        const end = line.indexOf("'", i + 1);
        if (end < 0) throw new Error(`unterminated ' in: ${line}`);
        word += line.slice(i + 1, end);
        i = end + 1;
      } else if (ch === '"') {
        let j = i + 1;
        while (j < line.length && line[j] !== '"') {
          if (line[j] === '\\' && j + 1 < line.length) j++;
          word += line[j];
          j++;
        }
        if (j >= line.length) throw new Error(`unterminated " in: ${line}`);
        i = j + 1;
      } else if (ch === '\\' && i + 1 < line.length) {
        word += line[i + 1];
        i += 2;
      } else {
        word += ch;
        i++;
      }
    }
    tokens.push({ word });
  }
  return tokens;
}

export interface SimpleCommand {
  /** Leading VAR=value assignments. */
  env: Record<string, string>;
  words: string[];
}

/** The simple commands of a line (split on pipes and lists), redirections dropped. */
export function simpleCommands(line: string): SimpleCommand[] {
  const commands: SimpleCommand[] = [];
  let current: SimpleCommand = { env: {}, words: [] };
  for (const token of tokenize(line)) {
    if ('op' in token) {
      if (/^(\|\||\||&&|;|&)$/.test(token.op)) {
        if (current.words.length || Object.keys(current.env).length) commands.push(current);
        current = { env: {}, words: [] };
      }
      continue; // a redirection
    }
    const assignment = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(token.word);
    if (assignment && current.words.length === 0) current.env[assignment[1]!] = assignment[2]!;
    else current.words.push(token.word);
  }
  if (current.words.length || Object.keys(current.env).length) commands.push(current);
  return commands;
}

/** The command lines of a shell block: comments and blank lines dropped, `\` continuations joined. */
export function shellLines(text: string): string[] {
  const joined = text.replace(/\\\n\s*/g, ' ');
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

export interface ConsoleCommand {
  command: string;
  output: string[];
}

/** `$ command` lines of a console block, each with the output lines that follow it. */
export function consoleCommands(text: string): ConsoleCommand[] {
  const found: ConsoleCommand[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('$ ')) found.push({ command: line.slice(2), output: [] });
    else if (found.length) found.at(-1)!.output.push(line);
  }
  for (const entry of found) while (entry.output.length && entry.output.at(-1)!.trim() === '') entry.output.pop();
  return found;
}
