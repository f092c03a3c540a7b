// The custom stage's verdict on dependencies (docs/recipes.md#dependencies): any dependency not
// ready, or any line a test appended to the skip report, fails it with the count and each error.
// The skip report is a real file in a real run-state dir.
import { appendFileSync, writeFileSync } from 'node:fs';

import { afterAll, describe, expect, it } from 'vitest';

import { createRunState, readDepsSkipReport } from '../../lib/run-state.js';
import { type DepResult, depsVerdict } from '../../runner/run/deps.js';
import { cleanup, tempDir } from '../support/processes.js';

afterAll(cleanup);

function dep(recipe: string, ready: boolean, error?: string): DepResult {
  const domain = `${recipe.slice(0, 4)}-abcdef.ci.example.org`;
  return {
    ...{ recipe, domain, stack: domain.replaceAll('.', '_'), url: `https://${domain}`, envFile: `/x/${domain}.env` },
    ...{ version: '1.0.0', ready, ...(error ? { error } : {}), deployMs: 1, teardown: 'skipped' as const },
  };
}

describe('the dependencies verdict', () => {
  it('is null when every dependency is ready and no test reported a skip', () => {
    expect(depsVerdict([], [])).toBeNull();
    expect(depsVerdict([dep('keycloak', true)], [])).toBeNull();
  });

  it('fails with the count of skips and each failed dependency, even when no test skipped', () => {
    const broken = [dep('keycloak', true), dep('smtp', false, 'did not converge within 8s')];
    expect(depsVerdict(broken, ['test_mail.sh needs smtp', 'test_send.sh needs smtp'])).toBe(
      '2 tests skipped for a dependency that is not ready; not ready: smtp (smtp-abcdef.ci.example.org): did not converge within 8s',
    );
    expect(depsVerdict(broken, [])).toBe('not ready: smtp (smtp-abcdef.ci.example.org): did not converge within 8s');
  });

  it('fails on a reported skip though every dependency is ready: a run with a skip for a dependency is never green', () => {
    expect(depsVerdict([dep('keycloak', true)], ['test_sso.sh needs keycloak'])).toBe(
      '1 test skipped for a dependency that is not ready (test_sso.sh needs keycloak), though every dependency is ready',
    );
  });

  it('reads the skip report line by line, blank lines not counted, only its first 64 KiB', () => {
    const files = createRunState(tempDir('ccci-deps-'));
    expect(readDepsSkipReport(files)).toEqual([]); // no test wrote it
    appendFileSync(files.depsSkip, 'test_a needs x\n\n  \n');
    appendFileSync(files.depsSkip, 'test_b needs x\n');
    expect(readDepsSkipReport(files)).toEqual(['test_a needs x', 'test_b needs x']);
    writeFileSync(files.depsSkip, `${'x'.repeat(100)}\n`.repeat(2000));
    expect(readDepsSkipReport(files).length).toBe(Math.ceil((64 * 1024) / 101));
  });
});
