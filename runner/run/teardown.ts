// Tearing an app down: undeploy, remove the app (its .env), its volumes, secrets and networks, and check
// nothing is left. Tolerates a half-gone app, so the janitor can use it on any orphan and a run
// can use it on the leftovers of a run that died while it waited for the lock.
import { existsSync } from 'node:fs';

import { TeardownError, type Residual } from '../../lib/errors.js';
import { locking } from '../host/locking.js';
import { stackName } from '../../lib/naming.js';
import { timings } from '../host/timings.js';
import type { HostTools } from '../host/tools.js';

export type TeardownTools = HostTools;

/** What the app still has: services, volumes, secrets, networks, .env. */
export async function residual(domain: string, { abra, docker }: TeardownTools): Promise<Residual> {
  const stack = stackName(domain);
  const envPath = abra.envPath(domain);
  return {
    services: await docker.names('service', stack),
    volumes: await docker.names('volume', stack),
    secrets: await docker.names('secret', stack),
    networks: await docker.names('network', stack),
    env: existsSync(envPath) ? [envPath] : [],
  };
}

export function isEmpty(left: Residual): boolean {
  return Object.values(left).every((items) => items.length === 0);
}

/**
 * Removes everything of `domain`. Each step is tried even if an earlier one failed (abra may not
 * know an app whose .env is gone; docker still does); the failures are logged. With `verify`,
 * throws a TeardownError when anything is left.
 */
export function teardownApp(domain: string, tools: TeardownTools, verify = true): Promise<void> {
  return timings.span(`teardown ${domain}`, () => removeApp(domain, tools, verify));
}

async function removeApp(domain: string, tools: TeardownTools, verify: boolean): Promise<void> {
  const { abra, docker, log } = tools;
  const stack = stackName(domain);
  const attempt = async (what: string, step: () => Promise<void>): Promise<void> => {
    try {
      await step();
    } catch (error) {
      log(`  teardown ${domain}: ${what} failed: ${(error as Error).message.split('\n')[0]}`);
    }
  };
  log(`== teardown: ${domain} ==`);
  const before = await residual(domain, tools);
  if (before.env.length && before.services.length) await attempt('abra app undeploy', () => abra.appUndeploy(domain));
  await attempt('docker stack rm', () => docker.removeStack(stack));
  if (before.env.length) await attempt('abra app remove', () => abra.appRemove(domain));
  await attempt('removing volumes, secrets and networks', () => docker.removeLeftovers(stack));
  abra.removeEnv(domain);
  if (!verify) return;
  const left = await residual(domain, tools);
  if (!isEmpty(left)) throw new TeardownError(domain, left);
  log(`== teardown: ${domain} — nothing left ==`);
}

/**
 * The run's teardown of what it owns: its app, then its dependencies in reverse declaration order
 * (`domains()` gives that order when teardown begins). Each is torn down and verified only if this
 * process holds its lock (a run cancelled while it waited for a lock must never touch the app of
 * the run it was waiting for), and a residue of one does not stop the next. Runs once: a second
 * call (the funnel's, when a signal lands during the run's own teardown) waits for the one in
 * flight, since exiting under it would leave an app half-removed. Resolves with whether nothing
 * was left; `onEnd` hears each domain's `clean` or `residual`.
 */
export function ownTeardown(
  domains: () => readonly string[],
  tools: (signal?: AbortSignal) => TeardownTools,
  onEnd: (domain: string, outcome: 'clean' | 'residual') => void,
): (signal?: AbortSignal) => Promise<boolean> {
  let tearingDown: Promise<boolean> | undefined;
  const teardownOne = async (domain: string, own: TeardownTools): Promise<boolean> => {
    try {
      await teardownApp(domain, own, true);
      onEnd(domain, 'clean');
      return true;
    } catch (error) {
      onEnd(domain, 'residual');
      own.log(`!! ${error instanceof TeardownError ? error.message : `teardown of ${domain} failed: ${(error as Error).message}`}`);
      return false;
    }
  };
  return (signal) => {
    tearingDown ??= (async () => {
      const own = tools(signal);
      const locks = await locking();
      let clean = true;
      for (const domain of domains()) {
        if (locks.holds(domain)) clean = (await teardownOne(domain, own)) && clean;
      }
      return clean;
    })();
    return tearingDown;
  };
}
