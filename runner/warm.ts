// Warm/canonical apps: long-lived apps outside any run, kept at their recipe's latest version.
// Runs with the canonical ~/.abra (never a per-run dir) and leaves alone any app whose lock a run
// holds; it takes the same app lock while it works, so a run cannot start on an app mid-upgrade.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { canonicalAbraDir } from '../lib/abra-dir.js';
import { locking } from './host/locking.js';
import { InputError } from '../lib/errors.js';
import { assertDomain } from '../lib/naming.js';
import type { Abra } from './host/abra.js';
import type { Log } from './host/log.js';
import type { Docker } from './host/docker.js';
import type { IngressConfig } from './run/health.js';
import { recoverWarm } from './run/quick.js';
import { publishedVersions } from './run/recipe.js';
import { parseAppType } from './run/recipe-files.js';
import { readRecord, recordPath } from './run/warm-record.js';

export interface WarmReport {
  /** Apps a dead quick run left mid-lane, whose rollback this reconcile completed first. */
  rolledBack: string[];
  upgraded: { domain: string; from: string | null; to: string }[];
  current: string[];
  skipped: { domain: string; reason: string }[];
}

/** The warm apps to reconcile: `--apps` or `CCCI_WARM_APPS`, comma-separated domains. */
export function parseWarmApps(text: string | undefined, what = 'CCCI_WARM_APPS'): string[] {
  const domains = (text ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (domains.length === 0) throw new InputError('no warm apps configured: set CCCI_WARM_APPS or pass --apps (comma-separated domains)');
  for (const domain of domains) assertDomain(domain, `${what} domain`);
  return domains;
}

export interface WarmOptions {
  domains: string[];
  abra: Abra;
  docker: Docker;
  log: Log;
  dryRun: boolean;
  /** For a rollback left pending: its health check goes through the ingress, within the converge timeout. */
  ingress: IngressConfig;
  convergeTimeoutMs: number;
}

export async function warmReconcile(options: WarmOptions): Promise<WarmReport> {
  const { domains, abra, log, dryRun } = options;
  const report: WarmReport = { rolledBack: [], upgraded: [], current: [], skipped: [] };
  const skip = (domain: string, reason: string): void => {
    log(`== warm-reconcile: skipping ${domain}: ${reason} ==`);
    report.skipped.push({ domain, reason });
  };
  for (const domain of domains) {
    try {
      // Held by a run means hands off.
      if (!(await (await locking()).tryAcquire(domain, log))) {
        skip(domain, 'its app lock is held (a run is using it)');
        continue;
      }
    } catch (error) {
      skip(domain, (error as Error).message);
      continue;
    }
    try {
      // The lock's holder first completes a rollback a dead quick run left (docs/recipes.md#the-quick-lane).
      const record = readRecord(domain);
      if (record !== null) {
        if (dryRun) {
          skip(domain, `a quick run's rollback is pending (record ${recordPath(domain)})`);
          continue;
        }
        await abra.recipeFetch(record.recipe);
        const tree = join(canonicalAbraDir(), 'recipes', record.recipe);
        await recoverWarm(domain, {
          abra,
          docker: options.docker,
          log,
          tree,
          ingress: options.ingress,
          convergeTimeoutMs: options.convergeTimeoutMs,
        });
        report.rolledBack.push(domain);
      }
      const envPath = abra.envPath(domain);
      if (!existsSync(envPath)) {
        skip(domain, `no app config at ${envPath}`);
        continue;
      }
      const type = parseAppType(readFileSync(envPath, 'utf8'));
      if (!type) {
        skip(domain, `${envPath} has no TYPE=<recipe> line`);
        continue;
      }
      await abra.recipeFetch(type.recipe);
      const latest = (await publishedVersions(join(canonicalAbraDir(), 'recipes', type.recipe))).at(-1) ?? null;
      if (!latest) {
        skip(domain, `recipe ${type.recipe} has no published version`);
      } else if (latest === type.version) {
        log(`== warm-reconcile: ${domain} is at ${latest}, the latest ==`);
        report.current.push(domain);
      } else {
        log(`== warm-reconcile: ${domain} ${type.version ?? '(unknown)'} -> ${latest}${dryRun ? ' (dry run)' : ''} ==`);
        if (!dryRun) await abra.appDeploy(domain, { version: latest, force: true });
        report.upgraded.push({ domain, from: type.version, to: latest });
      }
    } catch (error) {
      skip(domain, `failed: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  return report;
}
