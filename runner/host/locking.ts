// The app lock as the run, the janitor, `cc-ci locks` and warm-reconcile use it: one interface over
// the two backends (CCCI_LOCK_BACKEND, lib/lock-backend.ts). flock's code path is the one it always
// was (lib/lock.ts, lib/janitor.ts); etcd's (lib/etcd-lock.ts) is imported only when chosen.
// docs/scale-out.md
import type { JanitorOptions, JanitorReport } from '../../lib/janitor.js';
import { type LockBackendName, lockBackendName } from '../../lib/lock-backend.js';

export interface AcquireOptions {
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface Locking {
  readonly backend: LockBackendName;
  /** Takes the domain's lock for the process's life (waiting while another holds it); its generation on etcd, null on flock. */
  acquire(domain: string, options?: AcquireOptions): Promise<{ generation: string | null }>;
  /** The generation of each domain this process holds on etcd (empty on flock). */
  generations(): Record<string, string>;
  /** Whether this process holds the domain's lock: it tears down only what it holds. */
  holds(domain: string): boolean;
  /** One try: false when another process holds it. */
  tryAcquire(domain: string, log?: (line: string) => void): Promise<boolean>;
  janitor(options: JanitorOptions): Promise<JanitorReport>;
  /** Lets go of every lock at the process's end (etcd: revokes the lease; flock: the exit does it). */
  releaseAll(): Promise<void>;
}

export interface LockingOptions {
  /** This process in a holder's record: the run id, or the command's name. */
  runId: string;
  kind: 'run' | 'janitor';
  /** A run's lifetime abort, for a lost etcd lease. */
  onLost?: (why: string) => void;
  log?: (line: string) => void;
}

let current: Promise<Locking> | undefined;

/** The process's locking, made on first use with `options` (the run passes its own first). */
export function locking(options: LockingOptions = { runId: `${process.pid}`, kind: 'janitor' }): Promise<Locking> {
  current ??= make(options);
  return current;
}

async function make(options: LockingOptions): Promise<Locking> {
  const backend = lockBackendName();
  if (backend === 'flock') {
    const [{ acquireAppLock, heldAppLocks }, { janitor }] = await Promise.all([
      import('../../lib/lock.js'),
      import('../../lib/janitor.js'),
    ]);
    return {
      backend,
      acquire: async (domain, acquire = {}) => {
        await acquireAppLock(domain, acquire);
        return { generation: null };
      },
      holds: (domain) => heldAppLocks().some((lock) => lock.domain === domain),
      generations: () => ({}),
      tryAcquire: async (domain, log) => {
        try {
          // An already-aborted signal turns the wait into a try.
          await acquireAppLock(domain, { signal: AbortSignal.abort(), log });
          return true;
        } catch (error) {
          if ((error as Error).name === 'AbortError') return false;
          throw error;
        }
      },
      janitor,
      releaseAll: async () => {},
    };
  }
  const [{ etcdSettings }, { EtcdLocks, etcdJanitor }, { swarmClusterId }] = await Promise.all([
    import('../../lib/lock-backend.js'),
    import('../../lib/etcd-lock.js'),
    import('./engine.js'),
  ]);
  const settings = etcdSettings();
  const cluster = await swarmClusterId();
  const locks = new EtcdLocks({ settings, cluster, ...options });
  return {
    backend,
    acquire: async (domain, acquire = {}) => ({ generation: (await locks.acquire(domain, acquire)).generation }),
    holds: (domain) => locks.holds(domain),
    generations: () => locks.generations(),
    tryAcquire: async (domain) => (await locks.tryAcquire(domain)) !== null,
    janitor: (janitorOptions) => etcdJanitor({ ...janitorOptions, settings, cluster, runId: options.runId }),
    releaseAll: () => locks.releaseAll(),
  };
}
