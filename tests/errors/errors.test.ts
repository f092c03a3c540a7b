// One error model: every error cc-ci throws on purpose carries a code, and exitCodeFor() alone turns
// an error into an exit code — for the library (a guarded run's main) and every command alike.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { describe, expect, it } from 'vitest';

import {
  CcciError,
  CommandError,
  EXIT,
  InputError,
  RunAbortedError,
  RunFailedError,
  TeardownError,
  exitCodeFor,
  isExpected,
  oneLine,
} from '../../lib/errors.js';
import { ROOT, startCli, tempDir, useHelpers } from '../support/processes.js';

useHelpers();

function parseArgsError(): unknown {
  try {
    parseArgs({ args: ['--bogus'], options: {}, strict: true });
  } catch (error) {
    return error;
  }
  throw new Error('parseArgs accepted --bogus');
}

describe('exitCodeFor', () => {
  it.each([
    ['bad input', new InputError('RECIPE must be …'), EXIT.badInput],
    ['a refused lockfile (errno code kept)', new InputError('EISDIR: lockfile is a directory', { code: 'EISDIR' }), EXIT.badInput],
    ['a bad flag (node:util parseArgs)', parseArgsError(), EXIT.badInput],
    ['a failed command', new CommandError('abra app deploy x', 1, 'boom', 'exited 1'), EXIT.failed],
    [
      'a teardown that left something',
      new TeardownError('x.example', { services: ['s'], volumes: [], secrets: [], networks: [], env: [] }),
      EXIT.failed,
    ],
    ['a red run', new RunFailedError('stage failed: install'), EXIT.failed],
    ['SIGTERM', new RunAbortedError('SIGTERM', 143, 'SIGTERM received'), 143],
    ['the hard deadline', new RunAbortedError('SIGALRM', 142, 'deadline'), 142],
    ['a bug (a plain Error)', new Error('oops'), EXIT.failed],
    ['something that is not an Error', 'a string', EXIT.failed],
  ])('%s → %i', (_what, error, code) => {
    expect(exitCodeFor(error)).toBe(code);
  });

  it('knows which errors are cc-ci’s own (one line) and which are bugs (a stack)', () => {
    expect(isExpected(new InputError('x'))).toBe(true);
    expect(isExpected(parseArgsError())).toBe(true);
    expect(isExpected(new CcciError('ERR_CCCI_HEALTH', 'x'))).toBe(true);
    expect(isExpected(new Error('x'))).toBe(false);
    expect(oneLine(parseArgsError())).not.toContain('\n');
  });
});

describe('errors thrown on purpose', () => {
  // Every `throw new X(` in lib/ and runner/ is one of cc-ci's error classes, or an argument error
  // given Node's own code on the spot; a bare `new Error(` has no code and no exit code of its own.
  const sources = ['lib', 'runner', 'runner/commands', 'runner/host', 'runner/run'].flatMap((dir) =>
    readdirSync(join(ROOT, dir))
      .filter((name) => name.endsWith('.ts'))
      .map((name) => ({ file: `${dir}/${name}`, text: readFileSync(join(ROOT, dir, name), 'utf8') })),
  );

  it('all carry a code', () => {
    const bare: string[] = [];
    for (const { file, text } of sources) {
      const lines = text.split('\n');
      lines.forEach((line, i) => {
        const statement = `${lines[i - 1] ?? ''} ${line} ${lines[i + 1] ?? ''}`; // a call may span the lines around it
        if (
          /\bnew (Error|TypeError|RangeError)\(/.test(line) &&
          !/Object\.assign\(new (Type|Range)?Error\(.*code:|argumentError\(/.test(statement)
        ) {
          bare.push(`${file}:${i + 1}: ${line.trim()}`);
        }
      });
    }
    expect(bare).toEqual([]);
  });
});

describe('bad input names what the user set', () => {
  const run = async (args: string[], env: NodeJS.ProcessEnv) => {
    const home = tempDir('ccci-errors-');
    const cli = startCli(['run', ...args], {
      env: { HOME: home, CCCI_RUNS_DIR: join(home, 'runs'), CCCI_APP_LOCK_DIR: join(home, 'locks'), ...env },
    });
    return { exit: await cli.exited, output: cli.output() };
  };

  it('RECIPE=../etc: the variable, its value, exit 2', async () => {
    const { exit, output } = await run([], { RECIPE: '../etc' });
    expect(exit.code).toBe(2);
    expect(output.trim()).toBe(`cc-ci run: RECIPE must be 1-100 characters of a-z, 0-9, '-' and '_' (no path characters): "../etc"`);
  });

  it('--recipe ../etc: the flag, its value, exit 2', async () => {
    const { exit, output } = await run(['--recipe', '../etc'], { RECIPE: 'fine' });
    expect(exit.code).toBe(2);
    expect(output).toMatch(/^cc-ci run: --recipe must be .*: "\.\.\/etc"$/m);
  });

  it('--json=x: the flag, exit 2', async () => {
    const cli = startCli(['locks', '--json=x']);
    expect((await cli.exited).code).toBe(2);
    expect(cli.output()).toMatch(/--json/);
  });
});
