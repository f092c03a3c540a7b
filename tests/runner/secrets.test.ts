// A secret reaches only the one command that needs it: CCCI_GIT_TOKEN goes to git (as a header in
// git's environment) and to nothing else. A recipe test is code from the PR under test: it gets the
// contract's variables and not one of the runner's own (docs/threat-model.md#recipe-code).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { runScript } from '../../runner/run/recipe-tests.js';
import { tempDir, useHelpers } from '../support/processes.js';

useHelpers();

describe('the environment a recipe test gets', () => {
  it("a recipe test sees the contract's variables and not CCCI_GIT_TOKEN", async () => {
    const dir = tempDir('ccci-secrets-');
    writeFileSync(join(dir, 'test_env.sh'), '#!/bin/sh\nenv > "$OUT"\n', { mode: 0o755 });
    const before = process.env.CCCI_GIT_TOKEN;
    process.env.CCCI_GIT_TOKEN = 'token-that-must-not-leak';
    process.env.SOME_CI_SECRET = 'also-not';
    try {
      const out = join(dir, 'env.txt');
      const check = await runScript('test_env.sh', {
        dir,
        env: { PATH: process.env.PATH!, HOME: '/nonexistent', LANG: 'C.UTF-8', DOMAIN: 'demo-1a2b3c.ci.test', OUT: out },
        timeoutMs: 10_000,
        signal: new AbortController().signal,
        log: () => {},
      });
      expect(check.verdict).toBe('pass');
      const seen = readFileSync(out, 'utf8');
      expect(seen).toContain('DOMAIN=demo-1a2b3c.ci.test');
      expect(seen).not.toContain('token-that-must-not-leak');
      expect(seen).not.toContain('SOME_CI_SECRET');
      const names = seen
        .split('\n')
        .filter(Boolean)
        .map((line) => line.split('=')[0]);
      // sh itself adds PWD, SHLVL and _; everything else is what the contract handed over.
      expect(names.filter((name) => !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(name!)).sort()).toEqual([
        'DOMAIN',
        'HOME',
        'LANG',
        'OUT',
        'PATH',
      ]);
    } finally {
      if (before === undefined) delete process.env.CCCI_GIT_TOKEN;
      else process.env.CCCI_GIT_TOKEN = before;
      delete process.env.SOME_CI_SECRET;
    }
  });
});
