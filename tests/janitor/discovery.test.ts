// Discovery finds a run app by anything docker still holds of it: a teardown cut short after
// `abra app remove` took the .env and the services leaves volumes, secrets or a network, and a
// janitor that did not see them would leave them for ever.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { stackName } from '../../lib/naming.js';
import { discoverApps } from '../../runner/host/discovery.js';
import { tempDir, useHelpers } from '../support/processes.js';

useHelpers();
const savedPath = process.env.PATH;
afterEach(() => {
  process.env.PATH = savedPath;
});

/** abra knows no app; docker prints `lines[kind]` for `docker <kind> ls`. */
function fakeTools(lines: Record<string, string[]>): void {
  const bin = join(tempDir('ccci-fake-tools-'), 'bin');
  mkdirSync(bin);
  const cases = Object.entries(lines)
    .map(([kind, names]) => `  "${kind} ls") printf '%s\\n' ${names.map((n) => `'${n}'`).join(' ')} ;;`)
    .join('\n');
  writeFileSync(join(bin, 'abra'), '#!/bin/sh\necho "{}"\n');
  writeFileSync(join(bin, 'docker'), `#!/bin/sh\ncase "$1 $2" in\n${cases}\nesac\nexit 0\n`);
  for (const tool of ['abra', 'docker']) chmodSync(join(bin, tool), 0o755);
  process.env.PATH = `${bin}:${savedPath}`;
}

describe('janitor discovery', () => {
  it.each(['volume', 'secret', 'network'])('finds a run app that only a %s is left of', async (kind) => {
    const domain = 'half-0a1b2c.ci.commoninternet.net';
    const name = { volume: 'data', secret: 'db_password_v1', network: 'default' }[kind];
    fakeTools({ [kind]: [`${stackName(domain)}_${name}`, 'warm-keycloak_ci_commoninternet_net_data'] });
    expect(await discoverApps()).toEqual([domain]);
  });
});
