// Boundary checks of the run's configuration that docs/inputs.md lists: each bad value is an
// InputError naming the input (the CLI prints it on one line and exits 2), found before the run
// starts. The CLI side of every row is checked by tests/docs/inputs.test.ts.
import { afterEach, describe, expect, it } from 'vitest';

import { runDir, runsDir } from '../../lib/abra-dir.js';
import { InputError } from '../../lib/errors.js';
import { abraServer } from '../../runner/host/abra.js';
import { parseRunConfig } from '../../runner/run/config.js';

const saved = { ...process.env };
afterEach(() => {
  for (const key of ['CCCI_RUNS_DIR', 'CCCI_SERVER']) {
    if (saved[key] === undefined) delete process.env[key];
    else process.env[key] = saved[key];
  }
});

function refusal(fn: () => unknown): InputError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(InputError);
    return error as InputError;
  }
  throw new Error('expected an InputError');
}

describe('run configuration at the boundary', () => {
  it('refuses a relative CCCI_RUNS_DIR: the exported ABRA_DIR must not depend on the cwd', () => {
    process.env.CCCI_RUNS_DIR = 'runs';
    expect(refusal(() => runDir()).message).toBe('CCCI_RUNS_DIR must be an absolute path, got "runs"');
    process.env.CCCI_RUNS_DIR = '/var/tmp/ccci-runs';
    expect(runsDir()).toBe('/var/tmp/ccci-runs');
    delete process.env.CCCI_RUNS_DIR;
    expect(runsDir()).toBe('/var/lib/cc-ci-runs');
  });

  it('refuses a CCCI_GIT_BASE that is not a URL, and drops trailing slashes from one that is', () => {
    for (const base of ['git.autonomic.zone', 'rel/path', 'https://git example.org', 'javascript:alert(1)']) {
      expect(refusal(() => parseRunConfig([], { RECIPE: 'x', CCCI_GIT_BASE: base })).message).toContain(`got ${JSON.stringify(base)}`);
    }
    expect(parseRunConfig([], { RECIPE: 'x', CCCI_GIT_BASE: 'https://git.example.org/mirror//' }).gitBase).toBe(
      'https://git.example.org/mirror',
    );
    expect(parseRunConfig([], { RECIPE: 'x', CCCI_GIT_BASE: 'file:///srv/git' }).gitBase).toBe('file:///srv/git');
  });

  it('refuses a CCCI_GIT_TOKEN with a control character, without ever showing the token', () => {
    for (const token of ['abc\ndef', 'abc\r\nX-Evil: 1', 'a\tb', 'a\0b']) {
      const error = refusal(() => parseRunConfig([], { RECIPE: 'x', CCCI_GIT_TOKEN: token }));
      expect(error.message).toMatch(/^CCCI_GIT_TOKEN contains a control character/);
      expect(error.message).not.toContain('abc');
    }
    expect(parseRunConfig([], { RECIPE: 'x', CCCI_GIT_TOKEN: 'f00-ba7_token.value' }).token).toBe('f00-ba7_token.value');
  });

  it('reports a bad CCCI_SERVER as an InputError wherever it is read', () => {
    process.env.CCCI_SERVER = '../other';
    expect(refusal(() => abraServer()).message).toBe('CCCI_SERVER must be a plain server name, got "../other"');
    expect(refusal(() => parseRunConfig([], { RECIPE: 'x', CCCI_SERVER: '../other' })).message).toBe(
      'CCCI_SERVER must be a plain server name, got "../other"',
    );
  });
});
