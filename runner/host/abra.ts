// The abra CLI, as the runner calls it. Every call inherits ABRA_DIR from the environment (the
// per-run dir inside a run), listens to the run's AbortSignal and logs its output.
import { rmSync } from 'node:fs';
import { join } from 'node:path';

import { abraDir } from '../../lib/abra-dir.js';
import { InputError } from '../../lib/errors.js';
import { exec, type ExecOptions } from './exec.js';
import type { Log } from './log.js';
import { timings } from './timings.js';

export interface AbraContext {
  server: string;
  log: Log;
  signal?: AbortSignal;
}

const MINUTE = 60_000;

export interface Abra {
  recipeFetch(recipe: string): Promise<void>;
  /**
   * Creates the app's .env; `secrets` also generates the recipe's secrets; `chaos` keeps the
   * recipe tree as checked out (the code under test) instead of checking out a version.
   */
  appNew(recipe: string, domain: string, options?: { version?: string; secrets?: boolean; chaos?: boolean }): Promise<void>;
  appDeploy(domain: string, options?: { version?: string; chaos?: boolean; force?: boolean }): Promise<void>;
  /** Generates every secret the app's recipe declares (`abra app secret generate <domain> --all`). */
  secretGenerate(domain: string): Promise<void>;
  appUndeploy(domain: string): Promise<void>;
  appRemove(domain: string): Promise<void>;
  /** Resolves with the snapshot's id (the last line abra prints on stdout; null when it prints none). */
  backupCreate(domain: string): Promise<string | null>;
  /** Restores the given snapshot, else the latest. */
  restore(domain: string, snapshot?: string): Promise<void>;
  /** `<abra dir>/servers/<server>/<domain>.env` */
  envPath(domain: string): string;
  /** Removes the app's .env directly (abra cannot remove an app whose recipe it cannot load). */
  removeEnv(domain: string): void;
}

/** `CCCI_SERVER`, the abra server the apps live on; default `default` (the local swarm). */
export function abraServer(env: NodeJS.ProcessEnv = process.env): string {
  const server = env.CCCI_SERVER || 'default';
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(server) || server.includes('..')) {
    throw new InputError(`CCCI_SERVER must be a plain server name, got ${JSON.stringify(server)}`);
  }
  return server;
}

export function abraClient(context: AbraContext): Abra {
  const abra = async (args: string[], timeoutMs: number): Promise<string> => {
    const options: ExecOptions = { signal: context.signal, log: context.log, timeoutMs, tag: '[abra]' };
    context.log(`  $ abra ${args.join(' ')}`);
    // Named by its words before the first flag: `abra app deploy <domain> <version>`.
    const firstFlag = args.findIndex((arg) => arg.startsWith('-'));
    const span = `abra ${args.slice(0, firstFlag < 0 ? args.length : firstFlag).join(' ')}`;
    return (await timings.span(span, () => exec('abra', args, options))).stdout;
  };
  const done = async (call: Promise<string>): Promise<void> => void (await call);
  const envPath = (domain: string): string => join(abraDir(), 'servers', context.server, `${domain}.env`);
  return {
    recipeFetch: (recipe) => done(abra(['recipe', 'fetch', recipe, '--no-input'], 10 * MINUTE)),
    appNew: (recipe, domain, options = {}) =>
      done(
        abra(
          [
            'app',
            'new',
            recipe,
            ...(options.version ? [options.version] : []),
            '--server',
            context.server,
            '--domain',
            domain,
            ...(options.secrets ? ['--secrets'] : []),
            ...(options.chaos ? ['--chaos'] : []),
            '--no-input',
          ],
          5 * MINUTE,
        ),
      ),
    appDeploy: (domain, options = {}) =>
      done(
        abra(
          [
            'app',
            'deploy',
            domain,
            ...(options.version ? [options.version] : []),
            '--no-input',
            ...(options.chaos ? ['--chaos'] : []),
            ...(options.force ? ['--force'] : []),
          ],
          15 * MINUTE,
        ),
      ),
    secretGenerate: (domain) => done(abra(['app', 'secret', 'generate', domain, '--all', '--no-input'], 5 * MINUTE)),
    appUndeploy: (domain) => done(abra(['app', 'undeploy', domain, '--no-input'], 10 * MINUTE)),
    appRemove: (domain) => done(abra(['app', 'remove', domain, '--no-input', '--force'], 10 * MINUTE)),
    backupCreate: async (domain) => {
      const lines = (await abra(['app', 'backup', 'create', domain, '--no-input'], 30 * MINUTE)).split('\n').filter((l) => l.trim());
      return lines.at(-1)?.trim() ?? null;
    },
    restore: (domain, snapshot) =>
      done(abra(['app', 'restore', domain, ...(snapshot ? ['--snapshot', snapshot] : []), '--no-input'], 30 * MINUTE)),
    envPath,
    removeEnv: (domain) => rmSync(envPath(domain), { force: true }),
  };
}
