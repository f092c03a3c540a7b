// cc-ci warm-reconcile, outside any run: the canonical ~/.abra (ABRA_DIR ignored), an app behind
// its recipe's latest version is brought to it, and an app whose lock a run holds is left alone.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { ROOT, startCli, startHelper, tempDir, useHelpers } from '../support/processes.js';

const { lockDir } = useHelpers();
const FIXTURES = join(ROOT, 'tests', 'fixtures');

describe('cc-ci warm-reconcile', () => {
  it('upgrades an app behind the latest version and skips one whose lock a run holds', async () => {
    const locks = lockDir();
    const home = tempDir('ccci-warm-home-');
    const remote = tempDir('ccci-warm-remote-');
    execFileSync('bash', [join(FIXTURES, 'make-recipe-repo.sh'), join(remote, 'ccci-demo')], { stdio: 'ignore' });
    const servers = join(home, '.abra', 'servers', 'default');
    mkdirSync(servers, { recursive: true });
    const [behind, busy] = ['warm-demo.example.org', 'warm-busy.example.org'];
    for (const domain of [behind, busy]) writeFileSync(join(servers, `${domain}.env`), `TYPE=ccci-demo:0.1.0+1.0\nDOMAIN=${domain}\n`);

    const holder = startHelper('hold-lock.mjs', [busy]);
    await holder.waitFor('HELD');

    const env = {
      HOME: home,
      PATH: `${join(FIXTURES, 'abra')}:${process.env.PATH}`,
      CCCI_TEST_RECIPE_REMOTE_BASE: remote,
      CCCI_APP_LOCK_DIR: locks,
      // Where quick-lane recovery records are looked for: this test's, never the host's default.
      CCCI_RUNS_DIR: join(home, 'runs'),
      ABRA_DIR: join(home, 'a-per-run-dir-it-must-ignore'),
    };
    const warm = startCli(['warm-reconcile', '--apps', `${behind},${busy}`, '--dry-run', '--json'], { env });
    expect(await warm.exited, warm.output()).toEqual({ code: 0, signal: null });
    // The JSON report is stdout's one write, after every log line (stderr).
    const report = JSON.parse(warm.lines.slice(warm.lines.indexOf('{'), warm.lines.lastIndexOf('}') + 1).join('\n'));
    expect(report.upgraded).toEqual([{ domain: behind, from: '0.1.0+1.0', to: '0.2.0+1.1' }]);
    expect(report.skipped).toEqual([{ domain: busy, reason: 'its app lock is held (a run is using it)' }]);
    expect(warm.output()).toContain(`== warm-reconcile: skipping ${busy}: its app lock is held (a run is using it) ==`);
  });
});
