#!/usr/bin/env bash
# Tools the suites use besides the swarm: SPIN for the lock-protocol model check (docs/model/),
# util-linux's flock(1) and lslocks for interop tests, python3 for the Python interop cases, curl
# and jq for recipe tests, systemd-analyze to verify the units `cc-ci units` writes.
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
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== setup-tools: installing ${missing[*]} ==" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v python3 >/dev/null 2>&1 || { echo '!! setup-tools: python3 is required' >&2; exit 1; }
