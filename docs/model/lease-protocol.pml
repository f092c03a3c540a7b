/*
 * The app lock of cc-ci on etcd leases (the second lock backend, for one swarm over several nodes),
 * as a Promela model for SPIN. docs/model/README.md ("The etcd-lease model") explains it;
 * docs/model/check.sh runs every check. The flock model is lock-protocol.pml, untouched by this one.
 *
 * One app domain, so one key, /cc-ci/v1/<cluster>/app/<domain>. A process takes it with a
 * create-if-absent transaction (CreateRevision == 0) that attaches it to a lease of its own; the
 * key goes when that lease is revoked (release) or expires at the server. Time is discrete: the
 * Clock's tick moves every timer one step; between two ticks every process takes any number of
 * steps, or none (a slow process). Per tick, each lease holder sends one renewal (RENEW = 1 tick),
 * which the network loses, delivers and acknowledges at once, delivers and acknowledges a tick
 * later, or delivers and loses the answer (a partition, either way). A process may be paused
 * (SIGSTOP: no step, no renewal, no answer read) past its lease's expiry, then resumed, and any
 * process may be SIGKILLed anywhere.
 *
 * The two clocks. The server expires a lease TTL ticks after the last renewal it received. The
 * holder's own deadline (a monotonic clock) is ABORT ticks after the SEND of its last acknowledged
 * renewal; until then it acts normally, after it it aborts: it acts only to tear down, and only
 * until ABORT + ABORT_TIME. It checks that clock before every docker action (OWN_OK below). A docker
 * action lands at most SLACK ticks after that check (the subprocess, or the daemon request it
 * already sent, finishes; a paused or killed run's child still lands, within that bound).
 *
 * Variants, each a cpp switch (`spin -a -DNAME`), each expected to break a property:
 *   NO_SELF_ABORT    nobody checks its own clock: act until done, whatever the renewals did
 *   ABORT_GE_TTL     ABORT = TTL (the start-up validation TTL >= ABORT + ABORT_TIME + SLACK skipped)
 *   NO_SLACK         TTL = ABORT + ABORT_TIME: the constraint forgets that an action lands late
 *   CLOCK_FROM_ACK   the own deadline counts from the acknowledgement, not from the send
 *   JANITOR_NO_SELF_ABORT  runs check their own clock, the janitor does not before its teardown
 *
 * Bounds: NR = 2 runs, NJ = 1 janitor sweep, MAXKILLS kills and MAXPAUSES pauses per execution.
 */

#ifndef NR
#define NR 2            /* runs of the one domain */
#endif
#ifndef NJ
#define NJ 1            /* janitor sweeps */
#endif
#define NP (NR + NJ)    /* process ids: runs 1..NR, janitors NR+1..NP; 0 = nobody */
#ifndef MAXKILLS
#define MAXKILLS 1
#endif
#ifndef MAXPAUSES
#define MAXPAUSES 1
#endif

/* Ticks. TTL 6, RENEW 1, ABORT 4, ABORT_TIME 1, SLACK 1: the real defaults (30 s, 5 s, 20 s, 5 s,
 * 5 s) divided by five. RENEW is one tick (one renewal per tick): safety does not depend on it
 * (ABORT >= 3 * RENEW is for not aborting on one lost renewal), so it is not a parameter here. */
#define ABORT_TIME 1
#define SLACK 1         /* an action lands at most this long after its check: 0 or 1 in this model */
#if defined(NO_SLACK)
#define TTL 5
#else
#define TTL 6
#endif
#if defined(ABORT_GE_TTL)
#define ABORT TTL
#else
#define ABORT 4
#endif
/* The start-up validation (the lease backend refuses to start otherwise). The variants that break
 * it are the configurations it refuses. */
#if !defined(ABORT_GE_TTL) && !defined(NO_SLACK)
#if TTL < ABORT + ABORT_TIME + SLACK
#error "TTL < ABORT + ABORT_TIME + SLACK"
#endif
#endif
#define STOP (ABORT + ABORT_TIME)   /* dl[p] at a fresh deadline: ticks until p may not act at all */

#define bit(p) (1 << (p))
#define who(p) ((p) <= NR -> 'R' : 'J')

/* ---- etcd, the network, the host ------------------------------------------------------------------ */

byte key = 0;           /* the process whose lease the key is attached to; 0 = no key */
byte ksrv = 0;          /* ticks until the server expires the lease the key is on. Only the key's
                           lease needs a timer: a lease without the key protects nothing, and its
                           holder's renewals of it change nothing anyone looks at */
byte dl[NP + 1];        /* p's own clock: ticks until it may not act at all. Normal actions while
                           dl > ABORT_TIME (before the abort deadline), abort teardown while dl > 0 */
bool renewing[NP + 1];  /* p's keepalive runs: from its transaction until it aborts, releases or dies */
bool lateack[NP + 1];   /* the answer to p's last renewal comes a tick late */
bool live[NP + 1];      /* started, not exited, not killed */
bool paused[NP + 1];    /* SIGSTOPped: takes no step, sends no renewal, reads no answer */
byte kills = 0;
byte pauses = 0;

byte app = 0;           /* the app's state on the host: bit(r) when run r's install is in it */
#define NEWAPP 1        /* abra app new + abra app deploy */
#define RMAPP  2        /* teardownApp */
byte pend[NP + 1];      /* the docker action p started and that has not landed yet */
bool pold[NP + 1];      /* ... and a tick passed since it started: it lands before the next one */

/* ---- what the properties watch -------------------------------------------------------------------- */

bool unkeyed = 0;       /* a docker action landed while its actor's lease did not hold the key */
bool clash = 0;         /* ... while another process's lease held it: two holders acting at once */
byte reaped = 0;        /* bit(r): someone else tore down run r's install */
bool afterreap = 0;     /* a run acted on docker after someone else tore down its install */
bool foreign = 0;       /* a run's install met, or was joined by, another run's app state */
bool swept = 0;         /* the final sweep, after every other process, is done */
bool late[NP + 1];      /* p was resumed after its lease had expired at the server */
bool pausedone = 0;     /* a run paused past its lease's expiry, whose install was reaped meanwhile,
                           was resumed and has exited (without acting: see appsafe, onkey) */

#if NP == 2
#define NLIVE (live[1] + live[2])
#define NPEND (pend[1] + pend[2])
#define CANTICK (!(pend[1] && pold[1]) && !(pend[2] && pold[2]))
#elif NP == 3
#define NLIVE (live[1] + live[2] + live[3])
#define NPEND (pend[1] + pend[2] + pend[3])
#define CANTICK (!(pend[1] && pold[1]) && !(pend[2] && pold[2]) && !(pend[3] && pold[3]))
#elif NP == 4
#define NLIVE (live[1] + live[2] + live[3] + live[4])
#define NPEND (pend[1] + pend[2] + pend[3] + pend[4])
#define CANTICK (!(pend[1] && pold[1]) && !(pend[2] && pold[2]) && !(pend[3] && pold[3]) && !(pend[4] && pold[4]))
#else
#error "NR + NJ must be 2, 3 or 4"
#endif

/* mutex (P1): never a docker action of one process while another's lease holds the key */
ltl mutex    { [] !clash }
/* appsafe (P2): no run acts on docker after someone else tore its install down; i.e. nobody reaps the
 * install of a run that still acts */
ltl appsafe  { [] !afterreap }
/* onkey (P3, the analogue of onpath): every docker action lands while its actor's own lease holds
 * the key (the fencing the design relies on, without a token the daemon checks) */
ltl onkey    { [] !unkeyed }
/* fresh (P4): a run's install never starts on top of another run's app state, nor is joined by it */
ltl fresh    { [] !foreign }
/* cleanup (P5): once every process is gone, one more janitor sweep leaves nothing behind */
ltl cleanup  { [] (swept -> app == 0) }
ltl safety   { [] (!clash && !afterreap && !unkeyed && !foreign && (!swept || app == 0)) }
/* Not a property: a witness. Its counterexample shows the paused-run scenario is reachable (so the
 * checks above cover it): a run SIGSTOPped past its lease's expiry, its install reaped meanwhile,
 * SIGCONTed, exits. */
ltl pausewitness { [] !pausedone }

/* ---- steps ----------------------------------------------------------------------------------------- */

/* A docker action of p lands. The host does not care who did it; the flags record what it meant. */
inline land(p, op) {
  if
  :: key != p -> unkeyed = 1;
     if
     :: key != 0 -> clash = 1
     :: else
     fi
  :: else
  fi;
  if
  :: p <= NR && (reaped & bit(p)) != 0 -> afterreap = 1
  :: else
  fi;
  if
  :: op == NEWAPP ->
     if
     :: (app & ~bit(p)) != 0 -> foreign = 1
     :: else
     fi;
     app = app | bit(p)
  :: op == RMAPP -> reaped = reaped | (app & ~bit(p)); app = 0
  fi
}

/* the own-clock check before a docker action */
#if defined(NO_SELF_ABORT)
#define OWN_OK(p) true
#define OWN_OK_ABORTING(p) true
#elif defined(JANITOR_NO_SELF_ABORT)
#define OWN_OK(p) ((p) > NR || dl[p] > ABORT_TIME)
#define OWN_OK_ABORTING(p) (dl[p] > 0)
#else
#define OWN_OK(p) (dl[p] > ABORT_TIME)
#define OWN_OK_ABORTING(p) (dl[p] > 0)
#endif

/* A docker action, normal: the clock check, then the command starts; it lands by the Docker process
 * (within SLACK ticks, paused parent or not), and p waits for it. Past the deadline: abort. */
inline act(me, op) {
  if
  :: atomic { OWN_OK(me) -> pend[me] = op; pold[me] = 0;
       if
       :: op == NEWAPP -> printf("%c%d starts installing; ", who(me), me)
       :: else -> printf("%c%d starts tearing down; ", who(me), me)
       fi }
  :: atomic { !OWN_OK(me) -> renewing[me] = 0; printf("%c%d: own deadline passed, aborts; ", who(me), me) };
     goto abort
  fi;
  pend[me] == 0
}

/* release: revoke the lease (the key goes with it). The call may be lost: the lease then expires. */
inline revoke(me) {
  renewing[me] = 0;
  if
  :: d_step { key == me -> key = 0; ksrv = 0; printf("%c%d revokes; ", who(me), me) }
  :: key == me -> printf("%c%d: revoke lost; ", who(me), me)
  :: key != me
  fi
}

inline proc_exit(me) {   /* and every timer of its own reset: nothing reads them any more */
  renewing[me] = 0;
  live[me] = 0;
  late[me] = 0;
  dl[me] = 0;
  lateack[me] = 0
}

/* the transaction: create the key if absent, on a lease granted just now (grant, txn and their answers
 * in one tick: the own deadline starts at the grant's send, the server's TTL at its receipt) */
#define TXN(me) key == 0 -> key = me; ksrv = TTL; dl[me] = STOP; renewing[me] = 1

/* ---- the processes --------------------------------------------------------------------------------- */

/* A run: take the key (waiting, by watching it, while someone else has it), remove a dead run's
 * leftovers, install, (the stages), tear down, revoke, exit. */
proctype Run(byte me) provided (live[me] && !paused[me]) {
  d_step { TXN(me); printf("R%d takes the key; ", me) }
  if
  :: app != 0 -> act(me, RMAPP)
  :: else
  fi;
  act(me, NEWAPP);
  act(me, RMAPP);
  revoke(me);
  goto done;
abort:
  /* stop acting, kill the children (an action already started lands within SLACK: pend), tear down
   * what it can before the own clock says ABORT + ABORT_TIME, never take the key again, exit */
  if
  :: atomic { OWN_OK_ABORTING(me) -> pend[me] = RMAPP; pold[me] = 0; printf("R%d starts its abort teardown; ", me) };
     pend[me] == 0
  :: atomic { !OWN_OK_ABORTING(me) -> printf("R%d: no time left to tear down; ", me) }
  fi;
  revoke(me);
done:
  skip;
  d_step {
    if
    :: late[me] && (reaped & bit(me)) != 0 -> pausedone = 1
    :: else
    fi;
    proc_exit(me); printf("R%d exits; ", me)
  }
}

/* A janitor sweep: discover, then the same transaction with its own lease; reap while holding the key;
 * revoke. Its own clock is checked before the teardown too (it may be paused or partitioned as well). */
proctype Janitor(byte me) provided (live[me] && !paused[me]) {
  if
  :: d_step { app != 0 -> printf("J%d discovers the app; ", me) }
  :: d_step { app == 0 -> printf("J%d discovers no app; ", me) }; goto done
  fi;
  if
  :: d_step { TXN(me); printf("J%d takes the key; ", me) }
  :: d_step { key != 0 -> printf("J%d: key held, live; ", me) }; goto done
  fi;
  act(me, RMAPP);
abort:
  revoke(me);
done:
  skip;
  d_step { proc_exit(me); printf("J%d exits; ", me) }
}

/* What a started docker action does, landing: the subprocess or the daemon, not the (maybe paused,
 * maybe killed) process that started it. */
#define LAND(p) d_step { pend[p] != 0 -> land(p, pend[p]); \
    if \
    :: pend[p] == NEWAPP -> printf("%c%d's install lands; ", who(p), p) \
    :: else -> printf("%c%d's teardown lands; ", who(p), p) \
    fi; \
    pend[p] = 0 }
active proctype Docker() {
end:
  do
  :: LAND(1)
  :: LAND(2)
#if NP >= 3
  :: LAND(3)
#endif
#if NP >= 4
  :: LAND(4)
#endif
  od
}

/* One tick for p (after the server's expiry of the key's lease): its timers, the late answer of the last renewal, this tick's
 * renewal. */
#ifdef CLOCK_FROM_ACK
#define LATE_DL STOP
#else
#define LATE_DL (STOP - 1)       /* sent a tick ago */
#endif
#ifdef CLOCK_FROM_ACK
#define LATE_ACKS
#endif
#ifdef LATE_ACKS
#define LATE_ACK(p) :: ksrv = TTL; lateack[p] = 1
#else
#define LATE_ACK(p)
#endif
#define TICK(p) \
  if \
  :: pend[p] != 0 -> pold[p] = 1 \
  :: else \
  fi; \
  if \
  :: dl[p] > 0 -> dl[p]-- \
  :: else \
  fi; \
  if \
  :: lateack[p] -> lateack[p] = 0; \
     if \
     :: renewing[p] && live[p] && !paused[p] && dl[p] < LATE_DL -> dl[p] = LATE_DL; printf("%c%d acked late; ", who(p), p) \
     :: else \
     fi \
  :: else \
  fi; \
  if \
  :: renewing[p] && live[p] && !paused[p] && key == p -> \
     if \
     :: printf("%c%d's renewal lost; ", who(p), p) \
     :: ksrv = TTL; dl[p] = STOP \
     LATE_ACK(p) \
     :: ksrv = TTL; printf("%c%d's renewal answer lost; ", who(p), p) \
     fi \
  :: else \
  fi

active proctype Clock() {
end:
  do
  :: atomic { CANTICK ->
       printf("tick; ");
       if
       :: ksrv > 0 -> ksrv--;
          if
          :: ksrv == 0 -> printf("%c%d's lease expires; ", who(key), key); key = 0
          :: else
          fi
       :: else
       fi;
       TICK(1); TICK(2);
#if NP >= 3
       TICK(3);
#endif
#if NP >= 4
       TICK(4);
#endif
       skip }
  od
}

/* SIGKILL: any live process, anywhere. Its lease lives on at the server until it expires. */
#define KILL(p) d_step { kills < MAXKILLS && live[p] -> proc_exit(p); paused[p] = 0; kills++; printf("%c%d killed; ", who(p), p) }
/* SIGSTOP, later SIGCONT */
#define PAUSE(p) d_step { pauses < MAXPAUSES && live[p] && !paused[p] -> paused[p] = 1; pauses++; printf("%c%d paused; ", who(p), p) }
#define RESUME(p) d_step { live[p] && paused[p] -> paused[p] = 0; \
    if \
    :: renewing[p] && key != p -> late[p] = 1; printf("%c%d resumed, its lease gone; ", who(p), p) \
    :: else -> printf("%c%d resumed; ", who(p), p) \
    fi }
active proctype Signals() {
end:
  do
  :: KILL(1)
  :: KILL(2)
  :: PAUSE(1)
  :: PAUSE(2)
  :: RESUME(1)
  :: RESUME(2)
#if NP >= 3
  :: KILL(3)
  :: PAUSE(3)
  :: RESUME(3)
#endif
#if NP >= 4
  :: KILL(4)
  :: PAUSE(4)
  :: RESUME(4)
#endif
  od
}

/* After every process is gone and every started action landed: one more janitor sweep, alone. */
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
    :: p <= NR -> run Run(p); p++
    :: else -> break
    od;
    do
    :: p <= NP -> run Janitor(p); p++
    :: else -> break
    od;
    p = 0
  };
  NLIVE == 0 && NPEND == 0;
  d_step {
    if
    :: app != 0 -> printf("final sweep reaps; "); app = 0
    :: else -> printf("final sweep discovers no app; ")
    fi;
    swept = 1
  }
}
