// The README's first command, exactly as written, on this machine as root: it sets the host up
// (idempotent here), builds a copy of this checkout with `npm ci`, and runs `cc-ci demo`, whose
// claims are checked here again from the outside: two runs at once, one SIGKILLed mid-deploy, the
// retry's janitor reaping its app while the other run is live and ends green, `cc-ci locks` during
// the runs, each summary and results.json, and nothing left on the swarm.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { blocks } from '../support/markdown.js';
import { cleanup, tempDir } from '../support/processes.js';
import { swarmNames } from '../../runner/demo.js';
import { requireSwarm } from '../support/swarm.js';
import { copyTree } from '../support/tree.js';

/** The README's first shell block: the first of its two commands. */
function firstCommand(): string {
  const first = blocks('README.md').find((block) => block.lang === 'sh');
  if (!first) throw new Error('README.md has no sh block');
  return first.text.trim();
}

/** Runs `bash -c command` in `cwd`, resolving with its exit code and its output, stdout and stderr interleaved. */
function bash(command: string, cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', command], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

describe("the README's first command", () => {
  afterAll(cleanup);
  if (!requireSwarm()) return;

  it('sets up, builds and runs the demo: one run killed and reaped, the other green, nothing left', { timeout: 600_000 }, async () => {
    const command = firstCommand();
    expect(command).toBe('bash .ci/setup-swarm.sh && bash .ci/setup-ingress.sh && npm ci && node dist/runner/cli.js demo');
    const tree = tempDir('ccci-readme-');
    copyTree(tree);

    const { code, output } = await bash(command, tree);
    const demoDir = /dir {5}(\/tmp\/ccci-demo-\w+) /.exec(output)?.[1];
    try {
      expect(code, output).toBe(0);
      expect(output).toContain('the TEST-ONLY STAND-IN');
      expect(output).not.toMatch(/^\s+FAIL /m);
      expect(output).toContain('cc-ci demo: ok.');

      const domains = Object.fromEntries([...output.matchAll(/^ {4}([AB]): (\S+) {2}log /gm)].map((m) => [m[1], m[2]]));
      const base = domains.A!.split('.').slice(1).join('.');
      // `cc-ci locks` while both ran, each held by a `cc-ci run` process.
      const during = output.slice(output.indexOf('[2]'), output.indexOf('[3]'));
      for (const domain of [domains.A!, domains.B!])
        expect(during).toMatch(new RegExp(`${domain.replaceAll('.', '\\.')}\\s+held\\s+\\S+\\s+\\d+\\s+.*cli\\.js run`));
      expect(output).toContain(`SIGKILL to run B's process group`);
      expect(output).toContain(`== janitor: reaped [${domains.B}], live [${domains.A}], skipped 0 ==`);
      // A and C green, each with its summary and a results.json that says so.
      for (const [run, domain] of [
        ['a', domains.A!],
        ['c', domains.B!],
      ] as const) {
        expect(output).toContain(`== cc-ci ccci-demo (${domain}) run demo-${run}: exit 0 ==`);
        const path = join(demoDir!, 'runs', `demo-${run}`, 'results.json');
        expect(output).toContain(`results: ${path}`);
        const results = JSON.parse(readFileSync(path, 'utf8')) as { exitCode: number; teardown: string; domain: string };
        expect(results).toMatchObject({ exitCode: 0, teardown: 'clean', domain });
      }
      // Nothing left, looked at again after the demo ended.
      const left = await swarmNames(base.replaceAll('.', '_'));
      expect(left).toEqual([]);
      expect(existsSync(join(demoDir!, 'locks'))).toBe(false);
    } finally {
      if (demoDir) rmSync(demoDir, { recursive: true, force: true });
    }
  });
});
