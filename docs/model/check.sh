#!/usr/bin/env bash
# Model-checks the app-lock protocol with SPIN, exhaustively: the flock backend
# (docs/model/lock-protocol.pml, variants `correct` and the upper-case ones) and the etcd-lease
# backend (docs/model/lease-protocol.pml, variants `lease*`).
#
#   docs/model/check.sh          the correct model against every property, and each variant against
#                                the property it must break
#   docs/model/check.sh --all    also every variant against every property (informative: only the
#                                expected results above decide the exit code)
#   docs/model/check.sh --wide   also the correct model with wider bounds (3 runs + 2 janitors, 2 runs
#                                + 3 janitors; leases: 2 runs + 1 janitor) against every safety
#                                property at once: 38-135M states, 3-8 GB and 3-15 min each; not for CI
#
# The correct models' safety properties are searched as one conjunction (`ltl safety`): no
# counterexample to it means none to any of them, at a fifth of the cost; only if it finds one are
# they searched one by one, to say which.
#
# Prints one line per check on stdout, `model: <variant> <property>: ok|counterexample`, in a fixed
# order; on stderr, per check, the states explored and the time, and for a counterexample the
# trail, replayed as one line of the model's narration. Exits 0 when the correct model verifies
# every property and every variant gives its expected counterexample, 1 otherwise, 2 when spin or
# a C compiler is missing.
#
# `pausewitness` (lease model) is not a property but a witness: its expected counterexample shows
# that a run paused past its lease's expiry, reaped meanwhile and then resumed is a reachable
# scenario, so the properties that hold cover it.
#
# Environment: CCCI_MODEL_JOBS (parallel checks; default: the number of CPUs), CCCI_MODEL_TIMEOUT
# (seconds per check; default 300). Everything is built in a temp dir, removed on exit.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
model_of() { case "$1" in lease*) echo "$here/lease-protocol.pml" ;; *) echo "$here/lock-protocol.pml" ;; esac; }
all=0
wide=0
for arg in "$@"; do
  case "$arg" in
    --all) all=1 ;;
    --wide) wide=1 ;;
    -h | --help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "check.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

command -v spin >/dev/null 2>&1 || { echo '!! check.sh: spin is not installed (Debian: apt-get install spin)' >&2; exit 2; }
cc="$(command -v gcc || command -v cc || true)"
[ -n "$cc" ] || { echo '!! check.sh: no C compiler (gcc or cc) to build the verifier' >&2; exit 2; }
command -v timeout >/dev/null 2>&1 || { echo '!! check.sh: timeout(1) is missing (coreutils)' >&2; exit 2; }

jobs="${CCCI_MODEL_JOBS:-$(nproc 2>/dev/null || echo 2)}"
limit="${CCCI_MODEL_TIMEOUT:-300}"
work="$(mktemp -d "${TMPDIR:-/tmp}/cc-ci-model.XXXXXX")"
cleanup() {
  # Our own background checks only (by pid), then the build dir.
  local pids
  pids="$(jobs -p)"
  [ -z "$pids" ] || kill $pids 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

flock_properties=(mutex appsafe onpath fresh cleanup progress)
lease_properties=(mutex appsafe onkey fresh cleanup pausewitness)
properties_of() { case "$1" in lease*) echo "${lease_properties[*]}" ;; *) echo "${flock_properties[*]}" ;; esac; }
variants=(correct NO_IDENTITY_CHECK UNLINK_AFTER_RELEASE REAP_AFTER_RELEASE NO_LEFTOVER_REMOVAL HUNG_TEARDOWN PARTIAL_DISCOVERY
  CHILD_SURVIVES
  lease lease-2runs lease-NO_SELF_ABORT lease-ABORT_GE_TTL lease-NO_SLACK lease-CLOCK_FROM_ACK
  lease-JANITOR_NO_SELF_ABORT)
# The correct models: every property holds (searched as one conjunction, see above).
is_correct() { case "$1" in correct | lease | lease-2runs) return 0 ;; *) return 1 ;; esac; }

# What each variant must do. The correct model: every property holds. Each variant: a
# counterexample to the properties listed here (it may break others too; --all shows them).
expect() { # variant property -> ok | counterexample | any
  local v="$1" p="$2"
  if is_correct "$v"; then
    if [ "$p" = pausewitness ]; then echo counterexample; else echo ok; fi
    return
  fi
  case "$v:$p" in
    NO_IDENTITY_CHECK:mutex | NO_IDENTITY_CHECK:onpath) echo counterexample ;;
    UNLINK_AFTER_RELEASE:onpath | UNLINK_AFTER_RELEASE:mutex) echo counterexample ;;
    REAP_AFTER_RELEASE:appsafe) echo counterexample ;;
    NO_LEFTOVER_REMOVAL:fresh) echo counterexample ;;
    HUNG_TEARDOWN:progress) echo counterexample ;;
    PARTIAL_DISCOVERY:cleanup) echo counterexample ;;
    CHILD_SURVIVES:appsafe | CHILD_SURVIVES:fresh) echo counterexample ;;
    lease-*:mutex | lease-*:appsafe) echo counterexample ;;
    lease-JANITOR_NO_SELF_ABORT:*) echo any ;; # onkey too (--all), at 3 s a search
    lease-*:onkey) echo counterexample ;;
    *) echo any ;;
  esac
}

checks=()
for v in "${variants[@]}"; do
  for p in $(properties_of "$v"); do
    e="$(expect "$v" "$p")"
    if [ "$e" != any ] || [ "$all" = 1 ]; then checks+=("$v $p $e"); fi
  done
done
if [ "$wide" = 1 ]; then
  checks+=("correct-3runs-2janitors safety ok" "correct-2runs-3janitors safety ok" "lease-2runs-1janitor safety ok")
fi

# One verifier per variant. -DNFAIR=3: weak fairness over this many processes (-f). The variants
# find their counterexamples in a few thousand states, so they are built unoptimised (a third of
# the compile time) unless --all searches their whole state spaces.
# The wider bounds store states compressed (-DCOLLAPSE) and may use up to 16 GB.
# The lease model: one run and one janitor sweep, or two runs (whose leftover removal is the reaper),
# each pair checked exhaustively in a second; the three together only under --wide (38M states).
build() { # variant
  local v="$1" dir="$work/$1" define=() opt=(-O1) model
  model="$(model_of "$v")"
  case "$v" in
    correct) ;;
    correct-3runs-2janitors) define=(-DNR=3 -DNJ=2) opt=(-O2 -DCOLLAPSE -DMEMLIM=16000) ;;
    correct-2runs-3janitors) define=(-DNR=2 -DNJ=3) opt=(-O2 -DCOLLAPSE -DMEMLIM=16000) ;;
    lease) define=(-DNR=1 -DNJ=1) ;;
    lease-2runs) define=(-DNR=2 -DNJ=0) ;;
    lease-2runs-1janitor) define=(-DNR=2 -DNJ=1) opt=(-O2 -DCOLLAPSE -DMEMLIM=16000) ;;
    # a late reap needs a second run to land on; no kill, no pause needed: 0.3M states, not 3M
    lease-JANITOR_NO_SELF_ABORT) define=(-DNR=2 -DNJ=1 -DMAXKILLS=0 -DMAXPAUSES=0 -DJANITOR_NO_SELF_ABORT) ;;
    lease-*) define=(-DNR=1 -DNJ=1 "-D${v#lease-}"); [ "$all" = 1 ] || opt=(-O0) ;;
    *) define=("-D$v"); [ "$all" = 1 ] || opt=(-O0) ;;
  esac
  mkdir -p "$dir"
  cp "$model" "$dir/"
  (
    cd "$dir"
    spin -a "${define[@]}" "$(basename "$model")" >spin.out 2>&1 || { cat spin.out >&2; exit 1; }
    "$cc" "${opt[@]}" -w -DNFAIR=3 -o pan pan.c 2>cc.out || { cat cc.out >&2; exit 1; }
  )
}

# One check: the variant's verifier against one LTL property, in a dir of its own (the trail is
# written to the working dir). Writes `<result> <states> <seconds>` and the replayed trail.
check() { # variant property
  local v="$1" p="$2" dir="$work/$1.$2" flags=() out started ended result states seconds="$limit"
  mkdir -p "$dir"
  ln -s "$work/$v/pan" "$dir/pan"
  # Safety properties: a plain search. The liveness property: acceptance cycles, weak fairness.
  [ "$p" = progress ] && flags=(-a -f)
  case "$v" in correct-* | lease-2runs-1janitor) flags+=(-w27); [ "$seconds" -ge 3600 ] || seconds=3600 ;; esac
  started="$(date +%s.%N)"
  # In the background, so that a TERM from cleanup() reaches timeout(1), which passes it to pan.
  (cd "$dir" && exec timeout "$seconds" ./pan -m1000000 "${flags[@]}" -N "$p" >pan.out 2>&1) &
  local verifier=$!
  trap 'kill "$verifier" 2>/dev/null; exit 143' TERM
  wait "$verifier" || true
  trap - TERM
  ended="$(date +%s.%N)"
  out="$dir/pan.out"
  if grep -q 'max search depth too small' "$out"; then
    result=incomplete
  elif grep -qE 'errors: 0$' "$out"; then
    result=ok
  elif grep -qE 'errors: [1-9][0-9]*$' "$out"; then
    result=counterexample
  else
    result=error # timed out, crashed, out of memory
  fi
  # pan writes large counts as 1.331857e+08
  states="$(grep -oE '^ *[0-9.e+]+ states, stored' "$out" | awk '{ printf "%d", $1 }')"
  [ -n "$states" ] || states='?'
  echo "$result $states $(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.1f", b - a }')" >"$dir/result"
  if [ "$result" = counterexample ] && [ -f "$dir/$(basename "$(model_of "$v")").trail" ]; then
    # -S: only the model's own printf narration; everything after "trail ends" is pan's state dump.
    (cd "$dir" && ./pan -r -S -N "$p" 2>&1) |
      sed -e '/trail ends/,$d' -e '/^pan: ltl formula/d' -e 's/MSC: ~G [0-9]*//' -e '/^$/d' -e 's/pan:[0-9]*: .*$//' \
        -e '/^spin:/d' -e 's/ *<<<<<START OF CYCLE>>>>> */ [cycle:] /' |
      tr -d '\n' | sed -e 's/[; ]*$//' >"$dir/trail"
  fi
}

# A correct model's safety properties: their conjunction first (see the header).
check_correct_safety() { # variant
  local v="$1" p result states seconds
  check "$v" safety
  read -r result states seconds <"$work/$v.safety/result"
  for p in $(properties_of "$v"); do
    [ "$p" != progress ] && [ "$p" != pausewitness ] || continue
    if [ "$result" = ok ]; then
      mkdir -p "$work/$v.$p"
      echo "ok $states $seconds (one search of ltl safety, the conjunction)" >"$work/$v.$p/result"
    else
      check "$v" "$p"
    fi
  done
}

run_limited() { # runs "$@" in the background, at most $jobs at a time
  while [ "$(jobs -pr | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  "$@" &
}

began="$(date +%s)"
needed=()
for c in "${checks[@]}"; do
  read -r v _ _ <<<"$c"
  case " ${needed[*]} " in *" $v "*) ;; *) needed+=("$v") ;; esac
done
for v in "${needed[@]}"; do run_limited build "$v"; done
wait
for v in "${needed[@]}"; do
  [ -x "$work/$v/pan" ] || { echo "!! check.sh: could not build the verifier for $v" >&2; exit 1; }
done
# The longest first: the wider bounds, then the liveness check of the correct model, then the rest.
rank() {
  case "$1 $2" in
    correct-* | lease-2runs-1janitor*) echo 0 ;;
    "correct progress") echo 1 ;;
    *" progress" | *" pausewitness") echo 3 ;;
    *) if is_correct "$1"; then echo 2; else echo 3; fi ;;
  esac
}
for r in 0 1 2 3; do
  for c in "${checks[@]}"; do
    read -r v p _ <<<"$c"
    [ "$(rank "$v" "$p")" = "$r" ] || continue
    if [ "$r" = 2 ]; then
      [ "$p" = mutex ] && run_limited check_correct_safety "$v" # one job for all of them
    else
      run_limited check "$v" "$p"
    fi
  done
done
wait

failed=0
for c in "${checks[@]}"; do
  read -r v p e <<<"$c"
  result=error states='?' seconds='?' how=''
  [ ! -f "$work/$v.$p/result" ] || read -r result states seconds how <"$work/$v.$p/result"
  echo "model: $v $p: $result"
  echo "   $states states, ${seconds} s${how:+ $how}" >&2
  if [ -s "$work/$v.$p/trail" ]; then echo "   trail: $(cat "$work/$v.$p/trail")" >&2; fi
  if [ "$e" != any ] && [ "$result" != "$e" ]; then
    echo "!! model: $v $p: expected $e, got $result" >&2
    [ "$result" = ok ] || [ "$result" = counterexample ] || sed 's/^/   pan: /' "$work/$v.$p/pan.out" | tail -n 20 >&2
    failed=1
  fi
done
echo "   model check: ${#checks[@]} checks in $(($(date +%s) - began)) s" >&2
exit "$failed"
