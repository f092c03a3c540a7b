/*
 * The app-lock protocol of cc-ci, as a Promela model for SPIN (docs/model/README.md explains it;
 * docs/model/check.sh runs every check).
 *
 * One app domain, so one lockfile path. Runs of that domain and janitor sweeps are processes; any
 * of them can be SIGKILLed between any two of its steps, and the kernel then closes its fd, which
 * releases its flock. The path names one inode of a small pool, or nothing: unlink(2) detaches the
 * inode from the path (whoever has it open keeps it, lock and all), open(O_CREAT) on an empty path
 * makes a fresh one. flock(2) is exclusive and per inode: LOCK_NB fails while anyone holds it, a
 * blocked waiter may be granted it once it is free, in no particular order, and a LOCK_NB taker may
 * beat every waiter to it. The app's state on the host is a set of "whose install is in it".
 *
 * One step of a process = one system call or one external command of the real code (the README
 * has the table). A step is atomic here because the real one is (a syscall), or because nobody
 * else can touch what it touches while it runs (an app mutation under the lock).
 *
 * Variants, each a cpp switch (`spin -a -DNAME`), each removing one rule (or assumption) and
 * expected to break a property (check.sh asserts that it does):
 *   NO_IDENTITY_CHECK      runs and janitors skip sameFile(fd, path) after winning a lock
 *   UNLINK_AFTER_RELEASE   the janitor closes (releases) the lockfile, then unlinks it
 *   REAP_AFTER_RELEASE     the janitor unlinks and releases, then tears the orphan down
 *   NO_LEFTOVER_REMOVAL    a run does not remove a dead predecessor's app before `abra app new`
 *   HUNG_TEARDOWN          a janitor's teardown may hang forever (no timeout on its commands)
 *   PARTIAL_DISCOVERY      discovery sees the app by its .env and services only, as the real
 *                          discoverApps does, so volumes, secrets and networks left by a teardown cut short
 *                          after `abra app remove` are invisible to every janitor
 *   CHILD_SURVIVES         not a rule removed but an assumption dropped: the abra/docker subprocess
 *                          doing an app mutation may finish it after its parent (run or janitor)
 *                          died, i.e. after the kernel released the parent's lock. The real code
 *                          does not rule this out: see README.md, "What the model found"
 *
 * Bounds (README.md, "Bounds", says why they are enough): NR = 2 runs, NJ = 2 janitor sweeps,
 * every process killable, an inode pool one larger than the number of processes (an assertion
 * proves it never runs dry), no bound on a run's retries (only an unlink causes one, and there are
 * at most NJ unlinks).
 */

#ifndef NR
#define NR 2            /* runs of the one domain */
#endif
#ifndef NJ
#define NJ 2            /* janitor sweeps: each probes the candidate, or tidies the lockfile */
#endif
#define NP (NR + NJ)    /* process ids: runs 1..NR, janitors NR+1..NP; 0 = nobody */
#define NI (NP + 1)     /* inodes 1..NI; 0 = no file */
#ifndef MAXKILLS
#define MAXKILLS NP     /* how many processes may be killed in one execution: all of them */
#endif

#define bit(p) (1 << (p))
#define who(p) ((p) <= NR -> 'R' : 'J')   /* for the trail's narration: R1, R2, J3, J4 */

/* ---- the kernel and the host ------------------------------------------------------------------ */

byte path = 0;          /* the inode <lock dir>/cc-ci-app-<domain>.lock names; 0 = no such file */
byte lk[NI + 1];        /* lk[i]: the process holding the exclusive flock on inode i; 0 = free */
byte fd[NP + 1];        /* fd[p]: the inode p has open for locking (one at a time); 0 = none */
bool live[NP + 1];      /* started, not exited, not killed. Every process runs `provided (live[me])`:
                           once killed it never takes another step */
byte kills = 0;

byte app = 0;           /* the app's state on the host: bit(r) when run r's install is in it */
byte residue = 0;       /* PARTIAL_DISCOVERY: the part of it discovery cannot see (volumes, secrets,
                           networks);
                           in the other models discovery sees every part, so this stays 0 */
#define STATE (app | residue)
byte livemask = 0;      /* bit(r) for every live run r */

#define NEWAPP 1        /* abra app new + abra app deploy */
#define RMAPP  2        /* teardownApp: undeploy, stack rm, app remove, volumes, secrets, networks */
#define RMRES  3        /* PARTIAL_DISCOVERY: teardownApp's last part: volumes, secrets, networks */
byte pending[NP + 1];   /* CHILD_SURVIVES: the mutation p's subprocess is still carrying out */

/* ---- what the processes believe, and what the properties watch --------------------------------- */

bool bel[NP + 1];       /* p believes it holds the path-visible lock: it won a flock and its identity
                           check passed; until it unlinks the file, lets go, or dies */
bool waiting[NP + 1];   /* run p is inside acquireAppLock */
bool torn_live = 0;     /* someone removed (part of) a live run's app */
bool foreign = 0;       /* a run's install met, or was joined by, another run's app state */
bool swept = 0;         /* the final janitor sweep, after every other process, is done */

#define ONPATH(p) (!bel[p] || fd[p] == path)
#if NP == 3
#define NLIVE (live[1] + live[2] + live[3])
#define NBEL (bel[1] + bel[2] + bel[3])
#define ALLONPATH (ONPATH(1) && ONPATH(2) && ONPATH(3))
#elif NP == 4
#define NLIVE (live[1] + live[2] + live[3] + live[4])
#define NBEL (bel[1] + bel[2] + bel[3] + bel[4])
#define ALLONPATH (ONPATH(1) && ONPATH(2) && ONPATH(3) && ONPATH(4))
#elif NP == 5
#define NLIVE (live[1] + live[2] + live[3] + live[4] + live[5])
#define NBEL (bel[1] + bel[2] + bel[3] + bel[4] + bel[5])
#define ALLONPATH (ONPATH(1) && ONPATH(2) && ONPATH(3) && ONPATH(4) && ONPATH(5))
#else
#error "NR + NJ must be 3, 4 or 5"
#endif

/* (a) never two live processes that each believe they hold the path-visible lock */
ltl mutex    { [] (NBEL <= 1) }
/* (b) never a live run's app torn down, by a janitor or by another run */
ltl appsafe  { [] !torn_live }
/* (c) a holder's lock is on the inode the path names, from its identity check until it lets go */
ltl onpath   { [] ALLONPATH }
/* (e) a run's fresh install never starts on top of an earlier run's app state, and no other run's
 *     state ever lands in it afterwards */
ltl fresh    { [] !foreign }
/* (f) once every run and janitor is gone, one more janitor sweep leaves nothing of the app behind */
ltl cleanup  { [] (swept -> STATE == 0) }
/* (a), (b), (c), (e) and (f) at once: one search instead of five (check.sh: the correct model and
 * --wide; no counterexample to the conjunction means none to any of them) */
ltl safety   { [] (NBEL <= 1 && !torn_live && ALLONPATH && !foreign && (!swept || STATE == 0)) }
/* (d) a run waiting for the lock eventually holds it or is gone (check with -a -f). Stated for run 1:
 *     the runs are the same code, started together, named only by their ids, so the model is
 *     symmetric in them and a counterexample for run 2 renamed is one for run 1 (and checking one
 *     run halves the search). */
ltl progress { [] (waiting[1] -> <> !waiting[1]) }

/* ---- kernel steps (always used inside an atomic or d_step) -------------------------------------- */

/* open(path, O_CREAT) when the path names nothing: the lowest inode nothing references (neither the
 * path nor an open fd: a freed inode number may come back, as on a real filesystem) */
inline create_file() {
  i = 1;
  do
  :: i > NI -> assert(false)          /* the pool is too small for these bounds */
  :: i <= NI && (path == i || fd[1] == i || fd[2] == i || fd[3] == i
#if NP >= 4
                 || fd[4] == i
#endif
#if NP >= 5
                 || fd[5] == i
#endif
                ) -> i++
  :: else -> break
  od;
  path = i;
  i = 0
}

/* close(fd): the flock goes with it */
inline close_fd(me) {
  if
  :: lk[fd[me]] == me -> lk[fd[me]] = 0
  :: else
  fi;
  fd[me] = 0;
  bel[me] = 0
}

/* exit(2), by SIGKILL or by returning: every fd closed, every flock released. The process's
 * subprocesses die with it, unless CHILD_SURVIVES. */
inline kernel_exit(me) {
  if
  :: fd[me] != 0 && lk[fd[me]] == me -> lk[fd[me]] = 0
  :: else
  fi;
  fd[me] = 0;
  bel[me] = 0;
  waiting[me] = 0;
  live[me] = 0;
  livemask = livemask & ~bit(me);
#ifndef CHILD_SURVIVES
  pending[me] = 0
#else
  skip
#endif
}

/* A mutation of the app lands on the host. The host does not care who did it; the flags record
 * what it did to live runs. */
inline land(p, op) {
  if
  :: op == NEWAPP ->
     if
     :: (STATE & ~bit(p)) != 0 -> foreign = 1
     :: else
     fi;
     app = app | bit(p);
#ifdef PARTIAL_DISCOVERY
     residue = residue | bit(p)
#else
     skip
#endif
  :: op == RMAPP ->               /* under PARTIAL_DISCOVERY: all but volumes, secrets, networks */
     if
     :: (app & livemask & ~bit(p)) != 0 -> torn_live = 1
     :: else
     fi;
     app = 0
  :: op == RMRES ->
     if
     :: (residue & livemask & ~bit(p)) != 0 -> torn_live = 1
     :: else
     fi;
     residue = 0
  fi
}

/* An app mutation by process `me`, done by its abra/docker subprocesses. A janitor's teardown may
 * fail (errors are logged, the lockfile is unlinked anyway) and leave the app where it was. In the
 * protocol as designed the subprocesses die with `me`, so the mutation is one step of `me`'s, taken
 * while it lives (and holds its lock). Under CHILD_SURVIVES it is two steps: the subprocess starts,
 * then its work lands; if `me` dies in between, the landing may still come (proctype Orphans). */
inline mutate(me, op) {
#ifdef CHILD_SURVIVES
  d_step {
    pending[me] = op;
    if
    :: op == NEWAPP -> printf("%c%d starts installing; ", who(me), me)
    :: else -> printf("%c%d starts tearing down; ", who(me), me)
    fi
  }
#endif
  atomic {
    if
    :: true -> land(me, op);
       if
       :: op == NEWAPP -> printf("%c%d installs; ", who(me), me)
       :: else -> printf("%c%d tears down; ", who(me), me)
       fi
    :: op == RMAPP && me > NR -> printf("J%d: teardown fails; ", me)
#ifdef HUNG_TEARDOWN
    :: op == RMAPP && me > NR -> printf("J%d: teardown hangs; ", me); false
#endif
    fi;
    pending[me] = 0
  }
#ifdef PARTIAL_DISCOVERY
  /* teardownApp's last step, removeLeftovers (volumes, secrets, networks): tried even if an earlier one failed */
  if
  :: op == RMAPP -> d_step { land(me, RMRES); printf("%c%d removes volumes, secrets, networks; ", who(me), me) }
  :: else
  fi
#endif
}

/* ---- the processes -------------------------------------------------------------------------------- */

/* runner/run.ts runRecipeCi: deployApp (runner/deploy.ts) takes the lock with acquireAppLock
 * (lib/lock.ts), removes leftovers, installs; the stages; teardownOurs; exit. No unlock: the
 * lock goes with the process. */
proctype Run(byte me) provided (live[me]) {
  byte i;
  bool got;

  waiting[me] = 1;
acquire:
  /* openForLocking(path): open(O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK) */
  atomic {
    if
    :: path == 0 -> create_file(); printf("R%d creates i%d; ", me, path)
    :: else -> printf("R%d opens i%d; ", me, path)
    fi;
    fd[me] = path
  }
  /* flock(fd, LOCK_EX | LOCK_NB) */
  d_step {
    if
    :: lk[fd[me]] == 0 -> lk[fd[me]] = me; got = 1; printf("R%d locks i%d; ", me, fd[me])
    :: else -> got = 0; printf("R%d waits on i%d; ", me, fd[me])
    fi
  }
  /* flockWait(fd, LOCK_EX): blocked until the kernel grants it */
  if
  :: got -> got = 0
  :: else -> d_step { lk[fd[me]] == 0 -> lk[fd[me]] = me; printf("R%d granted i%d; ", me, fd[me]) }
  fi;
  /* sameFile(fd, path): a lock won on an unlinked inode protects nothing; close, start over */
#ifndef NO_IDENTITY_CHECK
  if
  :: d_step { fd[me] != path -> printf("R%d: i%d unlinked, retries; ", me, fd[me]); close_fd(me) };
     goto acquire
  :: d_step { fd[me] == path -> bel[me] = 1; waiting[me] = 0; printf("R%d holds i%d; ", me, fd[me]) }
  fi;
#else
  d_step { bel[me] = 1; waiting[me] = 0; printf("R%d holds i%d (unchecked); ", me, fd[me]) }
#endif
  /* deployApp: holding the lock, whatever the domain has is a dead run's (residual()): remove it
   * (teardownApp). A removal that fails makes deployApp throw; to the protocol that is a kill
   * right before it, so run teardowns are modelled as succeeding. */
#ifndef NO_LEFTOVER_REMOVAL
  if
  :: STATE != 0 -> mutate(me, RMAPP)
  :: else
  fi;
#endif
  mutate(me, NEWAPP);                 /* abra app new, abra app deploy; then the stages */
  mutate(me, RMAPP);                  /* teardownOurs: reached only holding the lock */
  d_step { kernel_exit(me); printf("R%d exits; ", me) }
}

/* lib/janitor.ts janitor(): list the lock dir, discover, then either the candidate (Sweep.candidate,
 * Sweep.reap, Sweep.reaped) or, when discovery found no app, the tidy phase (Sweep.tidy). */
proctype Janitor(byte me) provided (live[me]) {
  byte i;
  bool listed, cand, heldDeleted;

  d_step {
    listed = (path != 0);
    if
    :: listed -> printf("J%d lists i%d; ", me, path)
    :: else -> printf("J%d lists no lockfile; ", me)
    fi
  }
  d_step {
    cand = (app != 0);
    if
    :: cand -> printf("J%d discovers the app; ", me)
    :: else -> printf("J%d discovers no app; ", me)
    fi
  }
  if
  :: cand ->
     cand = 0;
     /* Sweep.open(): openLockFile(path, false) */
     if
     :: d_step { path != 0 -> fd[me] = path; listed = 0; printf("J%d opens i%d; ", me, path) }
     :: path == 0 ->
        /* ENOENT, but listed at the start: another janitor unlinked it during this sweep: skip */
        if
        :: listed -> printf("J%d: lockfile gone, skips; ", me); goto done
        :: else
        fi;
        /* lockfilesHeldAfterUnlink(): someone holds a lock on a deleted lockfile: live, leave it */
        d_step {
          i = 1;
          do
          :: i > NI -> break
          :: i <= NI && i != path && lk[i] != 0 -> heldDeleted = 1; break
          :: else -> i++
          od;
          i = 0
        }
        if
        :: heldDeleted -> printf("J%d: a deleted lockfile is held, live; ", me); goto done
        :: else
        fi;
        /* no lockfile (host rebooted?): openLockFile(path, true) */
        atomic {
          if
          :: path == 0 -> create_file(); printf("J%d creates i%d; ", me, path)
          :: else -> printf("J%d opens i%d; ", me, path)
          fi;
          fd[me] = path
        }
     fi;
     /* flock(fd, LOCK_EX | LOCK_NB): held → a live run, leave it (finally: closeSync) */
     if
     :: d_step { lk[fd[me]] == 0 -> lk[fd[me]] = me; printf("J%d locks i%d; ", me, fd[me]) }
     :: d_step { lk[fd[me]] != 0 -> printf("J%d: i%d held, live; ", me, fd[me]); close_fd(me) };
        goto done
     fi;
     /* sameFile(fd, path): false → another janitor unlinked it: skip (finally: closeSync) */
#ifndef NO_IDENTITY_CHECK
     if
     :: d_step { fd[me] != path -> printf("J%d: i%d unlinked, skips; ", me, fd[me]); close_fd(me) };
        goto done
     :: d_step { fd[me] == path -> bel[me] = 1; printf("J%d holds i%d; ", me, fd[me]) }
     fi;
#else
     bel[me] = 1;
#endif
#if defined(REAP_AFTER_RELEASE)
     d_step { path = 0; bel[me] = 0; printf("J%d unlinks; ", me) }
     d_step { close_fd(me); printf("J%d closes; ", me) }
     mutate(me, RMAPP);                        /* teardown(domain), no longer under the lock */
#elif defined(UNLINK_AFTER_RELEASE)
     mutate(me, RMAPP);                        /* Sweep.reap: teardown(domain) */
     d_step { close_fd(me); printf("J%d closes; ", me) }
     d_step { path = 0; printf("J%d unlinks; ", me) }  /* whatever the path names by now */
#else
     mutate(me, RMAPP);                        /* Sweep.reap: teardown(domain) WHILE HOLDING */
     d_step { path = 0; bel[me] = 0; printf("J%d unlinks; ", me) }  /* Sweep.reaped: unlinkSync */
     d_step { close_fd(me); printf("J%d closes; ", me) }            /* Sweep.reaped: closeSync */
#endif
  :: else ->
     /* Sweep.tidy(): a lockfile listed at the start with no candidate behind it */
     if
     :: !listed -> goto done
     :: else -> listed = 0
     fi;
     /* openLockFile(path, false); ENOENT → tidied by someone else */
     if
     :: d_step { path != 0 -> fd[me] = path; printf("J%d opens i%d (tidy); ", me, path) }
     :: path == 0 -> goto done
     fi;
     /* !flock(fd, LOCK_EX | LOCK_NB) || !sameFile(fd, path) → leave it (finally: closeSync) */
     if
     :: d_step { lk[fd[me]] == 0 -> lk[fd[me]] = me; printf("J%d locks i%d; ", me, fd[me]) }
     :: d_step { lk[fd[me]] != 0 -> close_fd(me) }; goto done
     fi;
#ifndef NO_IDENTITY_CHECK
     if
     :: d_step { fd[me] != path -> close_fd(me) }; goto done
     :: d_step { fd[me] == path -> bel[me] = 1; printf("J%d holds i%d; ", me, fd[me]) }
     fi;
#else
     bel[me] = 1;
#endif
     d_step { path = 0; bel[me] = 0; printf("J%d unlinks (tidy); ", me) }  /* unlinkSync(path) */
     d_step { close_fd(me); printf("J%d closes; ", me) }                   /* finally: closeSync */
  fi;
done:
  atomic { kernel_exit(me) }          /* the sweep is over (the process may go on: same effect) */
}

/* SIGKILL (kill -9, the OOM killer, a CI agent dying with its step): any live process, between
 * any two of its steps. The kernel closes its fds, releasing its flocks. */
active proctype Killer() {
end:
  do
  :: d_step { kills < MAXKILLS && live[1] -> kernel_exit(1); kills++; printf("R1 killed; ") }
  :: d_step { kills < MAXKILLS && live[2] -> kernel_exit(2); kills++; printf("%c2 killed; ", who(2)) }
  :: d_step { kills < MAXKILLS && live[3] -> kernel_exit(3); kills++; printf("%c3 killed; ", who(3)) }
#if NP >= 4
  :: d_step { kills < MAXKILLS && live[4] -> kernel_exit(4); kills++; printf("J4 killed; ") }
#endif
#if NP >= 5
  :: d_step { kills < MAXKILLS && live[5] -> kernel_exit(5); kills++; printf("J5 killed; ") }
#endif
  :: break
  od
}

#ifdef CHILD_SURVIVES
/* A subprocess (abra app new/deploy, docker stack rm, docker volume rm, ...) whose parent died and
 * that nothing killed with it: what it was doing may still land, now under nobody's lock. */
#define ORPHAN(p) d_step { !live[p] && pending[p] != 0 -> \
    if \
    :: pending[p] == NEWAPP -> printf("%c%d's orphaned subprocess installs; ", who(p), p) \
    :: else -> printf("%c%d's orphaned subprocess tears down; ", who(p), p) \
    fi; \
    land(p, pending[p]); pending[p] = 0 }
active proctype Orphans() {
end:
  do
  :: ORPHAN(1)
  :: ORPHAN(2)
  :: ORPHAN(3)
#if NP >= 4
  :: ORPHAN(4)
#endif
#if NP >= 5
  :: ORPHAN(5)
#endif
  od
}
#endif

/* After every run and janitor is gone (exited or killed): one more janitor sweep, alone on the
 * host, not killed, its teardown working. Discovery (abra app ls + docker service ls) sees `app`;
 * under PARTIAL_DISCOVERY it does not see `residue`. The lock is free: everyone is dead. */
inline final_sweep() {
  NLIVE == 0;
  d_step {
    if
    :: app != 0 -> printf("final sweep reaps; "); app = 0; residue = 0
    :: else -> printf("final sweep discovers no app; ")
    fi;
    swept = 1
  }
}

init {
  byte p;
  atomic {
    p = 1;
    do
    :: p <= NP -> live[p] = 1; p++
    :: else -> break
    od;
    p = 1;
    do
    :: p <= NR -> livemask = livemask | bit(p); run Run(p); p++
    :: else -> break
    od;
    do
    :: p <= NP -> run Janitor(p); p++
    :: else -> break
    od;
    p = 0
  };
  final_sweep()
}
