#!/usr/bin/env node
// `cc-ci <command> [args]`: each command is one module in ./commands exporting `usage` and
// `main(args) -> exit code`. The command table below names them, with their one-line summaries, so
// that `--version`, `--help` and a command's start load nothing but the module they need: the
// modules are imported on use, and each imports its heavy dependencies only in `main`.
// Errors become exit codes in lib/errors.ts (exitCodeFor): bad input (InputError) exits 2 with a
// one-line message.
//
// Start-up cost, measured by `npm run bench cli`: an ESM `import ... from 'node:fs'` builds the
// module's ESM facade, which reads every export, lazy ones included, and so loads node:stream; and
// the first console.log sets up a stdout stream. This file therefore takes node:fs with
// process.getBuiltinModule (no facade) and prints with write(2) (./commands/output.ts).
import { EXIT, InputError, exitCodeFor, isExpected, oneLine } from '../lib/errors.js';
import { print } from './commands/output.js';

const { readFileSync } = process.getBuiltinModule('node:fs');

export interface Command {
  usage: string;
  main(args: string[]): Promise<number>;
}

interface Entry {
  /** One line for the overview: a capitalised verb first, no trailing period. */
  summary: string;
  load(): Promise<Command>;
}

/** Every command, in the overview's order (alphabetical). */
const COMMANDS: Record<string, Entry> = {
  demo: {
    summary: 'Show what cc-ci is for on this host: two runs at once, one killed, its app reaped',
    load: () => import('./commands/demo.js'),
  },
  doctor: {
    summary: 'Check this host for cc-ci runs: one row per check, pass, warn or fail, and the fix',
    load: () => import('./commands/doctor.js'),
  },
  janitor: {
    summary: 'Reap the apps of runs that died, leaving every live run alone',
    load: () => import('./commands/janitor.js'),
  },
  locks: {
    summary: 'List the app lockfiles: held or free, age, holder pid and command',
    load: () => import('./commands/locks.js'),
  },
  run: {
    summary: "Run one recipe's CI: deploy under the app lock, the stages, teardown, results.json",
    load: () => import('./commands/run.js'),
  },
  step: {
    summary: 'Run a CI step command in its own session and exit with its exact code',
    load: () => import('./commands/step.js'),
  },
  units: {
    summary: 'Install the systemd timers that run the janitor and warm-reconcile on schedule',
    load: () => import('./commands/units.js'),
  },
  'warm-reconcile': {
    summary: "Bring the warm apps to their recipe's latest version, skipping those a run holds",
    load: () => import('./commands/warm-reconcile.js'),
  },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return `cc-ci ${pkg.version}`;
}

function overview(): string {
  const names = Object.keys(COMMANDS);
  const width = Math.max(...names.map((name) => name.length));
  return [
    'Usage: cc-ci <command> [options]',
    '       cc-ci <command> --help',
    '       cc-ci --version',
    '',
    'Commands:',
    ...names.map((name) => `  ${name.padEnd(width)}  ${COMMANDS[name]!.summary}`),
    '',
    'Options:',
    '  -V, --version  print the version and exit',
    '  -h, --help     this help',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    print(1, overview());
    return name === undefined ? exitCodeFor(new InputError('no command given')) : EXIT.ok;
  }
  if (name === '--version' || name === '-V') {
    print(1, version());
    return EXIT.ok;
  }
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (entry === undefined) {
    const unknown = new InputError(`unknown command ${JSON.stringify(name)}`);
    print(2, `cc-ci: ${unknown.message}\n\n${overview()}`);
    return exitCodeFor(unknown);
  }
  const command = await entry.load();
  const dashdash = args.indexOf('--');
  const own = dashdash === -1 ? args : args.slice(0, dashdash);
  if (own.includes('--help') || own.includes('-h')) {
    print(1, command.usage);
    return EXIT.ok;
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
