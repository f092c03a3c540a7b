// The etcd backend over TLS: one member that serves https and asks for client certificates, a CA
// and certificates made here with openssl, and cc-ci's settings reading them from the files
// CCCI_ETCD_CA, _CERT and _KEY name (docs/scale-out.md#setting-it-up).
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { EtcdClient } from '../../lib/etcd.js';
import { EtcdLocks } from '../../lib/etcd-lock.js';
import { etcdSettings } from '../../lib/lock-backend.js';
import { ETCD, requireEtcd } from '../support/etcd.js';
import { cleanup, startProcess, tempDir } from '../support/processes.js';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A CA, and a certificate it signed for `name` (with 127.0.0.1 as its address): the paths. */
function certificates(dir: string): { ca: string; server: [string, string]; client: [string, string] } {
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=ccci-test-ca', '-keyout', 'ca.key', '-out', 'ca.pem');
  for (const name of ['server', 'client']) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`);
    const ext = join(dir, `${name}.ext`);
    execFileSync('sh', ['-c', `printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth,clientAuth\\n' > ${ext}`]);
    ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      ext,
      '-out',
      `${name}.pem`,
    );
  }
  const at = (file: string): string => join(dir, file);
  return { ca: at('ca.pem'), server: [at('server.pem'), at('server.key')], client: [at('client.pem'), at('client.key')] };
}

describe('the etcd backend over TLS', { timeout: 60_000 }, () => {
  if (!requireEtcd()) return;
  afterAll(cleanup);

  it('takes a lock with the CA and client certificate the settings name, and is refused without the certificate', async () => {
    const dir = tempDir('ccci-etcd-tls-');
    const certs = certificates(dir);
    const [client, peer] = [await freePort(), await freePort()];
    const data = join(dir, 'data');
    mkdirSync(data, { mode: 0o700 });
    const member = startProcess(ETCD, [
      ...['--name', 'tls0', '--data-dir', data],
      ...['--listen-client-urls', `https://127.0.0.1:${client}`, '--advertise-client-urls', `https://127.0.0.1:${client}`],
      ...['--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`],
      ...['--initial-cluster', `tls0=http://127.0.0.1:${peer}`],
      ...['--cert-file', certs.server[0], '--key-file', certs.server[1], '--trusted-ca-file', certs.ca, '--client-cert-auth'],
    ]);
    const endpoint = `https://127.0.0.1:${client}`;
    const settings = etcdSettings({
      CCCI_ETCD_ENDPOINTS: endpoint,
      CCCI_ETCD_CA: certs.ca,
      CCCI_ETCD_CERT: certs.client[0],
      CCCI_ETCD_KEY: certs.client[1],
    });
    const locks = new EtcdLocks({ settings, cluster: 'tls', runId: 'tls', kind: 'run' });
    let lock: Awaited<ReturnType<EtcdLocks['acquire']>> | undefined;
    for (let i = 0; i < 100 && lock === undefined; i++) {
      lock = await locks.acquire('tlsx-0a1b2c.ci.commoninternet.net').catch(async () => {
        await new Promise((resolve) => setTimeout(resolve, 100));
        return undefined;
      });
    }
    expect(lock?.generation).toMatch(/^[0-9]+$/);
    expect((await locks.client.list('/cc-ci/v1/tls/')).map((kv) => kv.key)).toEqual([
      '/cc-ci/v1/tls/app/tlsx-0a1b2c.ci.commoninternet.net',
    ]);
    // The CA alone: the member asks for a client certificate and refuses the handshake.
    const anonymous = new EtcdClient({ endpoints: [endpoint], ca: settings.ca });
    await expect(anonymous.get('/cc-ci/v1/tls/app/x')).rejects.toMatchObject({ code: 'ERR_CCCI_ETCD' });
    anonymous.close();
    await locks.releaseAll();
    expect(await locks.client.list('/cc-ci/v1/tls/')).toEqual([]);
    member.child.kill('SIGKILL');
    await member.exited;
  });
});
