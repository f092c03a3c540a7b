#!/usr/bin/env bash
# Give the swarm that .ci/setup-swarm.sh prepared a real ingress, the way a Co-op Cloud server has
# one: the attachable overlay network `proxy` and a reverse proxy on it answering HTTPS on port 443
# for every app domain. Co-op Cloud runs Traefik; here it is Debian's caddy (2.6.2), imported into
# a local image `ccci/caddy:latest` (nothing can be pulled from a registry) and run as the swarm
# service `ccci-ingress` with .ci/ingress/Caddyfile: `<domain>` is routed to the abra stack named
# after it, service `<stack>_app`, port 80, with a certificate from Caddy's internal CA. The CA's
# root certificate is left at /var/lib/cc-ci-test/ingress-root.pem for the tests to trust.
#
# Runs as root after setup-swarm.sh on a fresh Debian 12 machine whose only network is Debian's
# apt mirrors and the npm registry. Idempotent: every step first checks whether it is already
# done, so a second run (the ingress may be up from an earlier one) changes nothing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CADDYFILE_SRC="$HERE/ingress/Caddyfile"
IMAGE="ccci/caddy:latest"
SERVICE="ccci-ingress"
NETWORK="proxy"
STATE_DIR="/var/lib/cc-ci-test"
CONF_DIR="$STATE_DIR/ingress/conf"   # mounted read-only at /etc/caddy
DATA_DIR="$STATE_DIR/ingress/data"   # Caddy's data dir (/data): the internal CA lives on across runs
CA_ROOT_IN_DATA="$DATA_DIR/caddy/pki/authorities/local/root.crt"
ROOT_PEM="$STATE_DIR/ingress-root.pem"
# A host name no app ever has: the readiness probe's request ends in Caddy's 502.
PROBE_DOMAIN="setup-probe.ccci-ingress.invalid"
WAIT_SECONDS=60

log() { printf '== setup-ingress: %s ==\n' "$*" >&2; }
die() { printf '!! setup-ingress: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and writes $STATE_DIR)"
[ -f "$CADDYFILE_SRC" ] || die "$CADDYFILE_SRC is missing"

mkdir -p /run/lock
exec 9>/run/lock/ccci-setup-ingress.lock
flock 9

cleanup=()
on_exit() { local c; for c in "${cleanup[@]}"; do eval "$c"; done; }
trap on_exit EXIT

unset DOCKER_API_VERSION
[ "$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" = active ] ||
  die "no active docker swarm here: run .ci/setup-swarm.sh first"

# --- 1. packages -----------------------------------------------------------------------------------
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
pkg_installed caddy || missing+=(caddy)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  # caddy's postinst enables and starts a host caddy.service (serving :80). Only the binary is
  # wanted: keep invoke-rc.d/deb-systemd-invoke from starting anything during the install...
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# cc-ci .ci/setup-ingress.sh: start no service while installing\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    cleanup+=('rm -f /usr/sbin/policy-rc.d')
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  if [[ " ${missing[*]} " == *" caddy "* ]] && command -v systemctl >/dev/null 2>&1; then
    # ...and disable the unit it enabled, so that no boot starts it either (works without a
    # running systemd too: it only removes the symlinks).
    if [ -d /run/systemd/system ]; then
      systemctl disable --now caddy.service caddy-api.service >/dev/null 2>&1 || true
    else
      systemctl disable caddy.service caddy-api.service >/dev/null 2>&1 || true
    fi
    log "host caddy.service disabled (only the binary is used, in $IMAGE)"
  fi
else
  log "packages already present (caddy, curl)"
fi

CADDY=/usr/bin/caddy
[ -x "$CADDY" ] || die "$CADDY is missing although caddy is installed"
caddy_deb_version=$(dpkg-query -W -f='${Version}' caddy)

# --- 2. local image --------------------------------------------------------------------------------
image_version=$(docker image inspect --format '{{index .Config.Labels "ccci.caddy.deb-version"}}' "$IMAGE" 2>/dev/null || true)
if [ "$image_version" = "$caddy_deb_version" ]; then
  log "image $IMAGE already present (caddy $caddy_deb_version)"
else
  log "building $IMAGE from $CADDY (caddy $caddy_deb_version)"
  workdir=$(mktemp -d /tmp/ccci-caddy-rootfs.XXXXXX)
  cleanup+=("rm -rf '$workdir'")
  root="$workdir/rootfs"
  mkdir -p "$root"/{usr/bin,etc/caddy,data,config,tmp}
  chmod 1777 "$root/tmp"
  cp "$CADDY" "$root/usr/bin/caddy"
  # Debian builds caddy dynamically linked (libc, libzstd, the loader): copy what ldd lists, at the
  # paths it lists them (symlinks resolved).
  libs=$(ldd "$CADDY" | grep -o '/[^ ]*' | sort -u)
  [ -n "$libs" ] || die "ldd lists no libraries for $CADDY"
  for lib in $libs; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  printf '%s\n' 'root:x:0:0:root:/data:/usr/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin' \
    >"$root/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$root/etc/group"
  printf '%s\n' 'hosts: files dns' >"$root/etc/nsswitch.conf"
  # No CA bundle: Caddy here only issues from its own CA and talks plain HTTP to the apps.
  tar --numeric-owner --owner=0 --group=0 -C "$root" -cf - . |
    docker import \
      -c 'ENV HOME=/data XDG_DATA_HOME=/data XDG_CONFIG_HOME=/config' \
      -c 'ENTRYPOINT ["/usr/bin/caddy"]' \
      -c 'CMD ["run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]' \
      -c "LABEL ccci.caddy.deb-version=\"$caddy_deb_version\"" \
      -c 'LABEL org.opencontainers.image.description="Debian caddy rootfs: the ingress of the cc-ci e2e suite"' \
      -m "cc-ci .ci/setup-ingress.sh" \
      - "$IMAGE" >/dev/null
  docker run --rm "$IMAGE" version >/dev/null || die "$IMAGE was built but caddy does not run in it"
fi

# --- 3. the proxy network --------------------------------------------------------------------------
# A /16: every app of every test run takes addresses on it, and the swarm's allocator on this
# daemon (20.10) does not always give a killed task's address back. A /24 ran out after a few
# suites on one machine ("could not find an available IP", tasks stuck in New).
SUBNET="10.231.0.0/16"
subnet=$(docker network inspect --format '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$NETWORK" 2>/dev/null || true)
if [ -n "$subnet" ] && [ "$subnet" != "$SUBNET" ]; then
  users=$(docker service ls --format '{{.Name}}' | while read -r name; do
    docker service inspect --format '{{range .Spec.TaskTemplate.Networks}}{{.Target}} {{end}}' "$name" |
      grep -qw "$(docker network inspect --format '{{.Id}}' "$NETWORK")" && [ "$name" != "$SERVICE" ] && echo "$name"
  done || true)
  if [ -z "$users" ]; then
    log "network $NETWORK has subnet $subnet, not $SUBNET: recreating it (and the ingress on it)"
    docker service rm "$SERVICE" >/dev/null 2>&1 || true
    # The ingress's task must stop before its network can go, and the removal itself lags.
    for _ in $(seq 120); do
      docker network inspect "$NETWORK" >/dev/null 2>&1 || break
      docker network rm "$NETWORK" >/dev/null 2>&1 || true
      sleep 1
    done
    docker network inspect "$NETWORK" >/dev/null 2>&1 && die "network $NETWORK could not be removed to recreate it"
  else
    log "network $NETWORK has subnet $subnet, not $SUBNET, but services use it ($users): leaving it"
  fi
fi
if network=$(docker network inspect --format '{{.Driver}} {{.Scope}} {{.Attachable}}' "$NETWORK" 2>/dev/null); then
  case "$network" in
    "overlay swarm true") log "network $NETWORK already present" ;;
    "overlay swarm false") log "network $NETWORK already present (not attachable: services can join it, standalone containers cannot)" ;;
    *) die "a network $NETWORK exists but is not a swarm overlay ($network): remove it or fix it by hand" ;;
  esac
else
  log "creating the attachable overlay network $NETWORK"
  docker network create --driver overlay --attachable --subnet "$SUBNET" "$NETWORK" >/dev/null
fi

# --- 4. the ingress service ------------------------------------------------------------------------
mkdir -p "$CONF_DIR" "$DATA_DIR"
chmod 0700 "$DATA_DIR"
image_id=$(docker image inspect --format '{{.Id}}' "$IMAGE")
# Everything the service is made of; a change in any of it replaces the service.
service_args=(
  --name "$SERVICE"
  --network "$NETWORK"
  # The routing mesh (ingress-mode publishing) does not answer on the CI machines: host mode.
  --publish "mode=host,target=443,published=443,protocol=tcp"
  --mount "type=bind,source=$CONF_DIR,target=/etc/caddy,readonly"
  --mount "type=bind,source=$DATA_DIR,target=/data"
  --replicas 1
  --no-resolve-image
  --stop-grace-period 5s
)
spec=$( { printf '%s\n' "$image_id" "${service_args[@]}"; cat "$CADDYFILE_SRC"; } | sha256sum | cut -c1-16)
current=$(docker service inspect --format '{{index .Spec.Labels "ccci.ingress.spec"}}' "$SERVICE" 2>/dev/null || true)

# Is anything listening on TCP 443 (IPv4 or IPv6)? 01BB = 443, state 0A = LISTEN.
port_443_taken() { awk 'NR > 1 && $4 == "0A" && $2 ~ /:01BB$/ { found = 1 } END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null; }

if [ "$current" = "$spec" ]; then
  log "service $SERVICE already running this configuration (spec $spec)"
else
  # Validate first: a broken Caddyfile must not take down a working ingress.
  validate_dir=$(mktemp -d /tmp/ccci-caddy-validate.XXXXXX)
  cleanup+=("rm -rf '$validate_dir'")
  cp "$CADDYFILE_SRC" "$validate_dir/Caddyfile"
  docker run --rm -v "$validate_dir:/etc/caddy:ro" "$IMAGE" validate --config /etc/caddy/Caddyfile --adapter caddyfile \
    >"$validate_dir/log" 2>&1 || { cat "$validate_dir/log" >&2; die "$CADDYFILE_SRC does not validate"; }
  if [ -n "$current" ] || docker service inspect "$SERVICE" >/dev/null 2>&1; then
    log "replacing service $SERVICE (spec ${current:-none} -> $spec)"
    docker service rm "$SERVICE" >/dev/null
    deadline=$((SECONDS + WAIT_SECONDS))
    while [ -n "$(docker ps -aq --filter "label=com.docker.swarm.service.name=$SERVICE")" ]; do
      [ "$SECONDS" -lt "$deadline" ] || die "the old $SERVICE container did not go within ${WAIT_SECONDS}s"
      sleep 0.5
    done
  fi
  if port_443_taken; then
    die "something else listens on port 443 (see: ss -ltnp 'sport = :443'); the ingress needs it"
  fi
  install -m 0644 "$CADDYFILE_SRC" "$CONF_DIR/Caddyfile"
  log "creating service $SERVICE on network $NETWORK, 443 published in host mode (spec $spec)"
  docker service create --detach --label "ccci.ingress.spec=$spec" "${service_args[@]}" "$IMAGE" >/dev/null
fi

service_failure() {
  docker service ps --no-trunc --format '{{.Name}} {{.CurrentState}} {{.Error}}' "$SERVICE" 2>&1 | head -n 5 >&2 || true
  docker service logs --raw --tail 20 "$SERVICE" 2>&1 | tail -n 20 >&2 || true
  die "$*"
}

deadline=$((SECONDS + WAIT_SECONDS))
until docker service ps --filter desired-state=running --format '{{.CurrentState}}' "$SERVICE" 2>/dev/null | grep -q '^Running'; do
  [ "$SECONDS" -lt "$deadline" ] || service_failure "service $SERVICE has no running task after ${WAIT_SECONDS}s"
  sleep 0.5
done

# --- 5. the CA root, for the tests ------------------------------------------------------------------
# Caddy creates its internal CA when it provisions the `tls internal` policy, right at start.
deadline=$((SECONDS + WAIT_SECONDS))
until [ -s "$CA_ROOT_IN_DATA" ]; do
  [ "$SECONDS" -lt "$deadline" ] || service_failure "Caddy wrote no CA root ($CA_ROOT_IN_DATA) within ${WAIT_SECONDS}s"
  sleep 0.5
done
if cmp -s "$CA_ROOT_IN_DATA" "$ROOT_PEM"; then
  log "CA root already at $ROOT_PEM"
else
  install -m 0644 "$CA_ROOT_IN_DATA" "$ROOT_PEM.tmp.$$"
  mv -f "$ROOT_PEM.tmp.$$" "$ROOT_PEM"
  log "CA root copied to $ROOT_PEM"
fi

# --- 6. ready? -------------------------------------------------------------------------------------
# A verified TLS handshake with an on-demand certificate and any HTTP answer (502: no app there).
deadline=$((SECONDS + WAIT_SECONDS))
until code=$(curl --silent --show-error --output /dev/null --write-out '%{http_code}' --max-time 10 \
  --cacert "$ROOT_PEM" --resolve "$PROBE_DOMAIN:443:127.0.0.1" "https://$PROBE_DOMAIN/" 2>"$STATE_DIR/ingress/probe.err") &&
  [ "$code" != 000 ]; do
  [ "$SECONDS" -lt "$deadline" ] ||
    service_failure "no verified TLS answer on 127.0.0.1:443 within ${WAIT_SECONDS}s: $(cat "$STATE_DIR/ingress/probe.err")"
  sleep 1
done
rm -f "$STATE_DIR/ingress/probe.err"

log "ready: service $SERVICE ($IMAGE, caddy $caddy_deb_version) on network $NETWORK, https on 127.0.0.1:443 (probe got HTTP $code), CA root $ROOT_PEM"
