#!/usr/bin/env bash
# Prepare this machine for the e2e suite: a running dockerd, a single-node Docker Swarm, and a local
# image `ccci/busybox:latest` built from Debian's busybox-static (nothing can be pulled from a
# registry here). Runs as root on a fresh Debian 12 machine whose only network is Debian's apt
# mirrors and the npm registry. Idempotent: every step first checks whether it is already done, so
# running it twice (or on a developer machine that already has all of it) changes nothing.
set -euo pipefail

IMAGE="ccci/busybox:latest"
DOCKERD_LOG="/var/log/ccci-dockerd.log"
DOCKERD_WAIT_SECONDS=60

log() { printf '== setup-swarm: %s ==\n' "$*" >&2; }
die() { printf '!! setup-swarm: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts dockerd)"

# Two CI steps (or a developer and CI) running this at once must not race on apt or swarm init.
mkdir -p /run/lock
exec 9>/run/lock/ccci-setup-swarm.lock
flock 9

# --- 1. packages -----------------------------------------------------------------------------------
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
pkg_installed docker.io || missing+=(docker.io)
pkg_installed busybox-static || missing+=(busybox-static)
command -v git >/dev/null 2>&1 || missing+=(git)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  log "packages already present (docker.io, busybox-static, git)"
fi

BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "$BUSYBOX is missing although busybox-static is installed"
# The image has no libc: only a statically linked busybox can run in it.
if ldd "$BUSYBOX" >/dev/null 2>&1; then
  die "$BUSYBOX is dynamically linked (is the 'busybox' package shadowing 'busybox-static'?)"
fi

# --- 2. dockerd ------------------------------------------------------------------------------------
# `docker` on PATH may be a newer client than Debian's daemon (e.g. /usr/local/bin/docker 28.x
# against dockerd 20.10). The client negotiates the API version with the daemon unless
# DOCKER_API_VERSION pins it, so make sure nothing pins it to a version the daemon cannot serve.
unset DOCKER_API_VERSION
docker_ok() { docker info >/dev/null 2>&1; }

if docker_ok; then
  log "dockerd already answers"
else
  command -v dockerd >/dev/null 2>&1 || die "dockerd not found after installing docker.io"
  if dockerd_pid=$(pidof -s dockerd); then
    log "dockerd (pid $dockerd_pid) is running but not answering yet: waiting for it"
  else
    # A dockerd that died (machine handed back, killed) leaves its pidfile behind and the next
    # one refuses to start while it exists.
    if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid 2>/dev/null)" 2>/dev/null; then
      rm -f /var/run/docker.pid
    fi
    log "starting dockerd in the background (log: $DOCKERD_LOG)"
    # Detach fully (own session, no inherited stdio) so the daemon never holds the caller's pipes
    # open: a CI runner reading this script's output must see EOF when the script exits. Nor may
    # it inherit fd 9, or it would hold the setup lock for its whole life.
    setsid dockerd </dev/null >>"$DOCKERD_LOG" 2>&1 9>&- &
    dockerd_pid=$!
  fi
  deadline=$((SECONDS + DOCKERD_WAIT_SECONDS))
  until docker_ok; do
    if ! kill -0 "$dockerd_pid" 2>/dev/null; then
      tail -n 30 "$DOCKERD_LOG" >&2 || true
      die "dockerd exited during startup (see $DOCKERD_LOG)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 30 "$DOCKERD_LOG" >&2 || true
      die "dockerd did not answer within ${DOCKERD_WAIT_SECONDS}s (see $DOCKERD_LOG)"
    fi
    sleep 0.5
  done
  log "dockerd is up (pid $dockerd_pid)"
fi

# Every docker client found on PATH must be able to talk to the daemon (API negotiation).
while IFS= read -r client; do
  if ! "$client" version --format '{{.Server.APIVersion}}' >/dev/null 2>&1; then
    "$client" version >&2 || true
    die "docker client $client cannot talk to the daemon"
  fi
done < <(type -ap docker | awk '!seen[$0]++')

# --- 3. swarm --------------------------------------------------------------------------------------
swarm_state() { docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo unknown; }

state=$(swarm_state)
case "$state" in
  active)
    log "already a swarm node" ;;
  locked)
    die "this node's swarm is locked (docker swarm unlock needed); refusing to touch it" ;;
  error | pending)
    log "swarm state is '$state': leaving and re-initialising"
    docker swarm leave --force >/dev/null
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null ;;
  inactive)
    log "initialising a single-node swarm on the loopback"
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null ;;
  *)
    die "unexpected swarm state '$state'" ;;
esac

deadline=$((SECONDS + 30))
until [ "$(docker node ls --format '{{.Status}}' 2>/dev/null | head -n1)" = "Ready" ]; do
  [ "$SECONDS" -lt "$deadline" ] || die "swarm node did not become Ready within 30s"
  sleep 0.5
done

# --- 4. local image --------------------------------------------------------------------------------
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "image $IMAGE already present"
else
  log "building $IMAGE from $BUSYBOX"
  workdir=$(mktemp -d /tmp/ccci-busybox-rootfs.XXXXXX)
  trap 'rm -rf "$workdir"' EXIT
  root="$workdir/rootfs"
  mkdir -p "$root"/{bin,etc,root,tmp,var/www,run,proc,sys,dev}
  chmod 1777 "$root/tmp"
  cp "$BUSYBOX" "$root/bin/busybox"
  # Relative applet symlinks (`busybox --install -s` would point them at this host's path).
  for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] || [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' \
    >"$root/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$root/etc/group"
  printf '%s\n' 'hosts: files dns' >"$root/etc/nsswitch.conf"
  tar --numeric-owner --owner=0 --group=0 -C "$root" -cf - . |
    docker import \
      -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      -c 'CMD ["/bin/sh"]' \
      -c 'LABEL org.opencontainers.image.description="busybox-static rootfs for the cc-ci e2e suite"' \
      -m "cc-ci .ci/setup-swarm.sh" \
      - "$IMAGE" >/dev/null
  docker run --rm "$IMAGE" busybox true || die "$IMAGE was built but does not run"
fi

log "ready: $(docker version --format 'client {{.Client.Version}} / daemon {{.Server.Version}} (API {{.Server.APIVersion}})'), swarm $(swarm_state), image $IMAGE"
