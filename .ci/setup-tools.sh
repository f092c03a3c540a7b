#!/usr/bin/env bash
# Tools the suites use besides the swarm: SPIN for the lock-protocol model check (docs/model/),
# util-linux's flock(1) and lslocks for interop tests, python3 for the Python interop cases, curl
# and jq for recipe tests, systemd-analyze to verify the units `cc-ci units` writes, etcd (3.4, Debian's
# etcd-server) for the tests of lib/etcd.ts, which start members of their own on free loopback ports.
# Idempotent: installs only what is missing.
set -euo pipefail

missing=()
command -v spin >/dev/null 2>&1 || missing+=(spin)
command -v flock >/dev/null 2>&1 || missing+=(util-linux)
command -v lslocks >/dev/null 2>&1 || missing+=(util-linux)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
# curl and jq: the e2e dependency test's recipe test reads CCCI_DEPS_FILE and calls the ingress.
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v jq >/dev/null 2>&1 || missing+=(jq)
# systemd-analyze verify: tests/cli/units.test.ts checks the generated units with systemd's own parser.
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
[ -x /usr/bin/etcd ] || missing+=(etcd-server)
# A CA and certificates for the etcd TLS test.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== setup-tools: installing ${missing[*]} ==" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# etcd-server ships a service (systemd unit and init script) on 2379/2380: no CI host should run a
# stray member. Stop and disable it where an init could have started it; only the service's own
# process (its pidfile), never the tests' members. Without systemd as PID 1 (this CI) nothing started.
if [ -x /usr/bin/etcd ]; then
  if [ -d /run/systemd/system ]; then
    systemctl disable --now etcd.service >/dev/null 2>&1 || true
  elif [ -f /run/etcd.pid ] && [ -x /etc/init.d/etcd ]; then
    /etc/init.d/etcd stop >/dev/null 2>&1 || true
  fi
  if [ ! -d /run/systemd/system ] && command -v update-rc.d >/dev/null 2>&1 && [ -x /etc/init.d/etcd ]; then
    update-rc.d etcd disable >/dev/null 2>&1 || true
  fi
fi
command -v python3 >/dev/null 2>&1 || { echo '!! setup-tools: python3 is required' >&2; exit 1; }
