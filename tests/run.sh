#!/usr/bin/env bash
# The project's test command (README: `sudo tests/run.sh [cargo test args]`).
#
# Idempotent: installs what the integration tests need when it is missing,
# starts a Docker engine that makes no network of its own when none answers,
# builds the tiny busybox test image when absent, then runs the whole test
# suite with failure injection compiled in. Exits with cargo's status.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE=pipework-test:latest
# cgroupfs-mount: Docker needs cgroups, and this machine has no init to mount them.
PACKAGES=(docker.io busybox-static iproute2 iputils-ping util-linux cgroupfs-mount)
COMMANDS=(dockerd docker busybox ip ping nsenter)
DOCKERD_LOG="$ROOT/target/dockerd.log"

say() { echo "tests/run.sh: $*" >&2; }

[ "$(id -u)" = 0 ] || { say "needs root (network namespaces, Docker): sudo tests/run.sh"; exit 1; }

install_packages() {
    local missing=() p c
    for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    for c in "${COMMANDS[@]}"; do command -v "$c" >/dev/null || missing+=("$c"); done
    [ ${#missing[@]} -eq 0 ] && return
    say "installing ${PACKAGES[*]} (missing: ${missing[*]})"
    # Keep the package scripts from starting a stock dockerd, which would
    # make docker0 and iptables rules on the machine's own network.
    local policy=/usr/sbin/policy-rc.d added=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        added=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT # if apt-get fails
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" </dev/null
    if [ -n "$added" ]; then
        rm -f "$policy"
        trap - EXIT
    fi
}

start_docker() {
    docker info >/dev/null 2>&1 && return
    if ! awk '$3 ~ /^cgroup2?$/ { found = 1 } END { exit !found }' /proc/mounts; then
        say "mounting cgroups"
        cgroupfs-mount
    fi
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    say "starting dockerd (log: $DOCKERD_LOG)"
    # No docker0, no iptables: the tests plumb all networking themselves.
    nohup dockerd --iptables=false --ip6tables=false --bridge=none \
        --host=unix:///var/run/docker.sock >"$DOCKERD_LOG" 2>&1 </dev/null &
    local i
    for i in $(seq 60); do
        docker info >/dev/null 2>&1 && return
        sleep 1
    done
    say "dockerd did not answer within 60 s; last lines of its log:"
    tail -n 30 "$DOCKERD_LOG" >&2
    exit 1
}

build_image() {
    docker image inspect "$IMAGE" >/dev/null 2>&1 && return
    say "building $IMAGE from busybox-static"
    local root a
    root="$(mktemp -d)"
    mkdir "$root/bin"
    cp "$(command -v busybox)" "$root/bin/busybox"
    for a in sh ip ping sleep cat ls arping udhcpc mknod; do ln -s busybox "$root/bin/$a"; done
    tar -C "$root" -c . | docker import - "$IMAGE" >/dev/null
    rm -rf "$root"
}

find_cargo() {
    command -v cargo >/dev/null && return
    # sudo's secure_path drops ~/.cargo/bin.
    local home
    for home in "${HOME:-/root}" "$(getent passwd "${SUDO_USER:-root}" | cut -d: -f6)"; do
        [ -x "$home/.cargo/bin/cargo" ] && { PATH="$home/.cargo/bin:$PATH"; return; }
    done
    say "cargo not found"
    exit 1
}

install_packages
start_docker
build_image
find_cargo
cd "$ROOT"
exec cargo test --features failpoints "$@"
