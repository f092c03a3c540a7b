#!/usr/bin/env node
// `cc-ci <command> [args]`: each command is one module in ./commands exporting `summary`, `usage`
// and `main(args) -> exit code`. Bad input (InputError) exits 2 with a one-line message.
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { EXIT, exitCodeFor, isExpected, oneLine } from '../lib/errors.js';

export interface Command {
  summary: string;
  usage: string;
  main(args: string[]): Promise<number>;
}

const commandsDir = fileURLToPath(new URL('./commands/', import.meta.url));

function commandNames(): string[] {
  return readdirSync(commandsDir)
    .filter((file) => file.endsWith('.js'))
    .map((file) => file.slice(0, -'.js'.length))
    .sort();
}

async function load(name: string): Promise<Command> {
  return (await import(new URL(`./commands/${name}.js`, import.meta.url).href)) as Command;
}

async function overview(): Promise<string> {
  const lines = ['Usage: cc-ci <command> [options]', '', 'Commands:'];
  for (const name of commandNames()) lines.push(`  ${name.padEnd(16)} ${(await load(name)).summary}`);
  lines.push('', "Run 'cc-ci <command> --help' for a command's options.");
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(await overview());
    return name === undefined ? 2 : 0;
  }
  if (!commandNames().includes(name)) {
    console.error(`cc-ci: unknown command ${JSON.stringify(name)}\n\n${await overview()}`);
    return 2;
  }
  const command = await load(name);
  const dashdash = args.indexOf('--');
  const own = dashdash === -1 ? args : args.slice(0, dashdash);
  if (own.includes('--help') || own.includes('-h')) {
    console.log(command.usage);
    return 0;
  }
  try {
    return await command.main(args);
  } catch (error) {
    const code = exitCodeFor(error);
    // Bad input is one line; another failure cc-ci names keeps its lines (a command's output tail);
    // anything else is a bug, shown with its stack.
    const text = code === EXIT.badInput ? oneLine(error) : isExpected(error) ? error.message : ((error as Error).stack ?? String(error));
    console.error(`cc-ci ${name}: ${text}`);
    return code;
  }
}

process.exitCode = await main(process.argv.slice(2));
