#!/usr/bin/env bash
# The project's test command (README: `tests/run.sh [cargo test args]`, as root).
#
# Idempotent: installs what the integration tests need when it is missing,
# starts a Docker engine that makes no network of its own and Open vSwitch
# when they do not answer, imports the tiny busybox test image into Docker and
# Podman when absent, then runs the whole test suite with failure injection
# compiled in. Exits with cargo's status. The integration tests are one
# binary, `it`, a module per area: `tests/run.sh --test it watch::` runs one.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE=pipework-test:latest
# cgroupfs-mount: Docker needs cgroups, and this machine has no init to mount them.
# dnsmasq-base: the DHCP tests' server, without a system service.
# udhcpc, isc-dhcp-client, dhcpcd-base: the host DHCP clients pipework runs.
# podman, containernetworking-plugins: the CNI tests' engine and the
# reference plugins (/usr/lib/cni); Podman runs them with runc.
# containerd: a Kubernetes node's runtime; tests/it/cri.rs runs private ones
# (their CRI plugin drives the CNI plugins) and imports images with `ctr`.
# nftables: `nft -j`, the oracle of the CNI plugin's ipMasq and macspoofchk
# rules, and the program the reference plugin runs for macspoofchk; iptables:
# the reference plugin's ipMasq.
# dpkg-dev, binutils, file: cargo-deb's computed Depends (dpkg-shlibdeps) and
# stripping, and the package test's readelf and file.
# systemd: the package test's `systemd-analyze verify` of the watch unit
# (only the tools: this machine's init stays as it is).
# man-db: tests/it/man.rs renders the manual with `man -l` to check its layout.
PACKAGES=(docker.io busybox-static iproute2 iputils-ping util-linux cgroupfs-mount
    dnsmasq-base openvswitch-switch podman containernetworking-plugins containerd
    udhcpc isc-dhcp-client dhcpcd-base nftables iptables dpkg-dev binutils file systemd man-db)
COMMANDS=(dockerd docker busybox ip bridge ping nsenter dnsmasq ovsdb-server ovs-vswitchd ovs-vsctl
    podman runc containerd ctr udhcpc dhclient dhcpcd nft iptables dpkg-shlibdeps readelf file
    systemd-analyze man)
DOCKERD_LOG="$ROOT/target/dockerd.log"
OVS_CTL=/usr/share/openvswitch/scripts/ovs-ctl
# Must match tests/common/podman.rs: the tests' own Podman storage.
PODMAN=(podman --root /var/lib/pipework-test/podman --runroot /run/pipework-test/podman
    --storage-driver vfs --cgroup-manager cgroupfs --events-backend file)

say() { echo "tests/run.sh: $*" >&2; }

[ "$(id -u)" = 0 ] || { say "needs root (network namespaces, Docker): run it as root"; exit 1; }

install_packages() {
    local missing=() p c
    for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    for c in "${COMMANDS[@]}"; do command -v "$c" >/dev/null || missing+=("$c"); done
    [ ${#missing[@]} -eq 0 ] && return
    say "installing ${PACKAGES[*]} (missing: ${missing[*]})"
    # Keep the package scripts from starting services: a stock dockerd would
    # make docker0 and iptables rules on the machine's own network; Open
    # vSwitch, uuidd, Podman's and containerd's units are started below, or
    # not at all (the CRI tests run containerds of their own).
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

# Whether an engine answers: `docker version` asks only for its version,
# where `docker info` can block for long on a busy engine.
docker_answers() {
    timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

start_docker() {
    docker_answers && return
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
        docker_answers && return
        sleep 1
    done
    say "dockerd did not answer within 60 s; last lines of its log:"
    tail -n 30 "$DOCKERD_LOG" >&2
    exit 1
}

start_ovs() {
    ovs-vsctl --timeout=5 show >/dev/null 2>&1 && return
    say "starting Open vSwitch (ovs-ctl)"
    # Database first: that step never touches kernel modules. ovs-ctl's
    # complaint that it cannot raise the open-files limit is harmless.
    "$OVS_CTL" --no-ovs-vswitchd --system-id=random --no-record-hostname start
    # This kernel has no openvswitch module (ovs-ctl skips modprobe where
    # there is no module support at all); the tests' bridges use the
    # userspace datapath (datapath_type=netdev), so a kernel whose modprobe
    # fails still gets its ovs-vswitchd.
    if ! "$OVS_CTL" --no-ovsdb-server --system-id=random --no-mlockall --no-record-hostname start; then
        say "ovs-ctl could not start ovs-vswitchd; starting it for the userspace datapath alone"
        ovs-vswitchd unix:/var/run/openvswitch/db.sock -vconsole:emer --no-chdir \
            --pidfile --detach --log-file
    fi
    ovs-vsctl --timeout=10 show >/dev/null
}

# The test image's root: a static busybox and the applets the tests call.
make_root() {
    local root="$1" a
    mkdir "$root/bin"
    cp "$(command -v busybox)" "$root/bin/busybox"
    for a in sh ip ping sleep cat ls arping udhcpc mknod; do ln -s busybox "$root/bin/$a"; done
}

build_images() {
    docker image inspect "$IMAGE" >/dev/null 2>&1 && "${PODMAN[@]}" image exists "$IMAGE" && return
    local root
    root="$(mktemp -d)"
    make_root "$root"
    if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
        say "building $IMAGE from busybox-static for Docker"
        tar -C "$root" -c . | docker import - "$IMAGE" >/dev/null
    fi
    if ! "${PODMAN[@]}" image exists "$IMAGE"; then
        say "importing $IMAGE into the tests' Podman storage"
        tar -C "$root" -c . | "${PODMAN[@]}" import -q - "$IMAGE" >/dev/null
    fi
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

# tests/it/package.rs builds the .deb with cargo-deb.
install_cargo_deb() {
    cargo deb --version >/dev/null 2>&1 && return
    say "installing cargo-deb"
    cargo install cargo-deb --locked
}

# The release and static builds tests/it/package.rs packages and runs: built
# here, before the suite, so they do not compete with the parallel tests for
# the CPU (the test's own builds are then no-ops).
build_release() {
    say "building the release and static binaries"
    cargo build --release --bin pipework
    RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --release --bin pipework --target x86_64-unknown-linux-gnu
}

install_packages
start_docker
start_ovs
build_images
find_cargo
cd "$ROOT"
install_cargo_deb
build_release
exec cargo test --features failpoints "$@"
