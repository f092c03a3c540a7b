// The ingress that .ci/setup-ingress.sh runs (Caddy as the swarm service `ccci-ingress` on the
// overlay network `proxy`, 443 published in host mode) routes an app's domain to its stack's `app`
// service over TLS from Caddy's internal CA, the way Traefik does on a Co-op Cloud server. This
// deploys a plain stack on `proxy`, fetches its page through 127.0.0.1:443 with the domain as SNI
// and Host, verifying the chain against the CA root the setup left behind, and tears it down.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';

import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';

import { IMAGE, names, swarmUnavailable } from '../support/swarm.js';

const ROOT_PEM = '/var/lib/cc-ci-test/ingress-root.pem';
const NETWORK = 'proxy';
const SERVICE = 'ccci-ingress';
/** abra's limit on stack names (the test-only abra and cc-ci follow it). */
const MAX_STACK_NAME = 45;
const BASE = 'e2e-ingress.test';

/** Why this machine has no ingress to test, or null when it has one. */
function ingressUnavailable(): string | null {
  const swarm = swarmUnavailable();
  if (swarm) return swarm;
  if (!existsSync(ROOT_PEM)) return `${ROOT_PEM} is missing`;
  const network = spawnSync('docker', ['network', 'inspect', '--format', '{{.Driver}}', NETWORK], { encoding: 'utf8' });
  if (network.status !== 0 || network.stdout.trim() !== 'overlay') return `there is no overlay network ${NETWORK}`;
  if (spawnSync('docker', ['service', 'inspect', SERVICE]).status !== 0) return `there is no service ${SERVICE}`;
  return null;
}

const unavailable = ingressUnavailable();
if (unavailable && process.env.CI) {
  it('has an ingress to run on (required under CI)', () => {
    throw new Error(`${unavailable}: run .ci/setup-swarm.sh and .ci/setup-ingress.sh before the suite`);
  });
}

/** abra's stack name for an app domain: dots as underscores, cut to 45 characters. */
function stackOf(domain: string): string {
  return domain.replaceAll('.', '_').slice(0, MAX_STACK_NAME);
}

interface Answer {
  status: number;
  body: string;
  authorized: boolean;
  subjectaltname: string;
  issuer: string;
}

/** GET https://<domain>/ through 127.0.0.1:443, with the domain as SNI and Host, trusting only the CA root. */
function fetchThroughIngress(domain: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: 443,
        path: '/',
        method: 'GET',
        servername: domain,
        headers: { Host: domain },
        ca: readFileSync(ROOT_PEM),
        agent: false,
        timeout: 10_000,
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const cert = socket.getPeerCertificate();
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body,
            authorized: socket.authorized,
            subjectaltname: cert.subjectaltname ?? '',
            issuer: [cert.issuer?.CN ?? ''].flat().join(', '),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from the ingress for ${domain} within 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** Everything docker still has of the stack: services, containers, networks. */
async function stackLeftovers(stack: string): Promise<string[]> {
  const label = `label=com.docker.stack.namespace=${stack}`;
  return [
    ...(await names(['service', 'ls', '--filter', label, '--format', '{{.Name}}'])),
    ...(await names(['ps', '-a', '--filter', label, '--format', '{{.Names}}'])),
    ...(await names(['network', 'ls', '--format', '{{.Name}}'])).filter((n) => n.startsWith(`${stack}_`)),
  ];
}

/**
 * `docker stack rm`, then wait until nothing of the stack is left. A just-used overlay network can
 * refuse removal for a few seconds ("exit status 1") and then go: retry its removal meanwhile.
 */
async function removeStack(stack: string, timeoutMs = 90_000): Promise<string[]> {
  await execa('docker', ['stack', 'rm', stack], { reject: false });
  const deadline = Date.now() + timeoutMs;
  let left = await stackLeftovers(stack);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    left = await stackLeftovers(stack);
    const containers = await names(['ps', '-a', '--filter', `label=com.docker.stack.namespace=${stack}`, '--format', '{{.ID}}']);
    if (containers.length === 0) {
      for (const network of left.filter((n) => n.startsWith(`${stack}_`))) {
        await execa('docker', ['network', 'rm', network], { reject: false });
      }
    }
  }
  return left;
}

const COMPOSE = (page: string): string => `version: "3.8"
services:
  app:
    image: ${IMAGE}
    # sh stays PID 1 and forwards TERM, so the stack goes without waiting out the grace period
    entrypoint: ["/bin/sh", "-c"]
    command:
      - >-
        mkdir -p /var/www/html && echo '${page}' > /var/www/html/index.html || exit 1;
        httpd -f -p 80 -h /var/www/html & httpd=$$!;
        trap 'kill $$httpd' TERM INT;
        wait $$httpd
    networks:
      - proxy
      - internal
    deploy:
      replicas: 1
      labels:
        - "traefik.enable=true"
        - "traefik.http.routers.\${STACK_NAME}.rule=Host(\`\${DOMAIN}\`)"
networks:
  proxy:
    external: true
  internal:
`;

describe.skipIf(unavailable !== null)('the e2e ingress (Caddy on the proxy network)', () => {
  const stacks = new Set<string>();
  const dirs = new Set<string>();
  afterEach(async () => {
    for (const stack of stacks) await removeStack(stack);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    stacks.clear();
    dirs.clear();
  }, 120_000);

  it('routes an app domain to its stack over verified TLS, and leaves nothing behind', async () => {
    const id = randomBytes(3).toString('hex');
    // Long enough that abra's stack name is the domain cut to 45 characters, so the route must
    // follow the cut, and four labels deep.
    const domain = `ingress-${id}.abrastacknamesarecutatfortyfivecharacters.${BASE}`;
    const stack = stackOf(domain);
    expect(domain.replaceAll('.', '_').length).toBeGreaterThan(MAX_STACK_NAME);
    const page = `ingress-e2e ${id}`;

    const dir = mkdtempSync(join(tmpdir(), 'ccci-ingress-'));
    dirs.add(dir);
    const compose = join(dir, 'compose.yml');
    writeFileSync(compose, COMPOSE(page));
    stacks.add(stack);
    await execa('docker', ['stack', 'deploy', '--detach=true', '--resolve-image', 'never', '-c', compose, stack], {
      env: { DOMAIN: domain, STACK_NAME: stack },
    });

    // Caddy answers 502 until the task runs and httpd listens: poll for the page.
    const deadline = Date.now() + 90_000;
    let answer: Answer | undefined;
    let last = '';
    while (Date.now() < deadline) {
      try {
        answer = await fetchThroughIngress(domain);
        if (answer.status === 200) break;
        last = `HTTP ${answer.status}`;
      } catch (error) {
        last = String(error);
      }
      answer = undefined;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(answer, `no page from ${domain} through the ingress within 90 s (last: ${last})`).toBeDefined();
    expect(answer!.status).toBe(200);
    expect(answer!.body.trim()).toBe(page);
    expect(answer!.authorized).toBe(true);
    expect(answer!.subjectaltname).toBe(`DNS:${domain}`);
    expect(answer!.issuer).toMatch(/Caddy Local Authority/);

    expect(await removeStack(stack)).toEqual([]);
    stacks.delete(stack);
    // The teardown of an app never takes the shared network with it.
    expect(spawnSync('docker', ['network', 'inspect', NETWORK]).status).toBe(0);
  }, 240_000);

  it('answers a domain with no app behind it, over verified TLS, with an error', async () => {
    const domain = `nothing-${randomBytes(3).toString('hex')}.${BASE}`;
    const answer = await fetchThroughIngress(domain);
    expect(answer.authorized).toBe(true);
    expect(answer.subjectaltname).toBe(`DNS:${domain}`);
    expect(answer.status >= 200 && answer.status < 300, `HTTP ${answer.status} for a domain without an app`).toBe(false);
    // (Caddy's answer when it cannot dial tasks.<stack>_app: the name does not resolve)
    expect(answer.status).toBe(502);
  });
});
