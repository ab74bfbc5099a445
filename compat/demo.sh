#!/usr/bin/env bash
# The runbook's main job, end to end, on throwaway namespaces (no Docker):
# a "docker host" namespace owning br0 (10.5.106.1/24) with Docker's
# firewall (br_netfilter on, FORWARD dropping by policy, a DOCKER-USER
# chain), a guest namespace standing in for the xcatmn container, and a
# compute node on the bridge.
# Builds pipework, runs `pipework br0 <guest> 10.5.106.101/24@10.5.106.1`,
# shows the result through ip(8), iptables(8) and the record pipework keeps,
# pings the guest from the node across the bridge that Docker's firewall
# would drop, and removes every namespace it made and its records
# (kept in a directory of its own, not /var/lib/pipework), even on failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ "$(id -u)" = 0 ] || { echo "compat/demo.sh: needs root: run it as root" >&2; exit 1; }
command -v cargo >/dev/null || PATH="${HOME:-/root}/.cargo/bin:$PATH"
# Each command this script runs, and the Debian package that has it.
declare -A PACKAGE=([ip]=iproute2 [ping]=iputils-ping [iptables]=iptables [sysctl]=procps)
missing=()
for c in "${!PACKAGE[@]}"; do command -v "$c" >/dev/null || missing+=("${PACKAGE[$c]}"); done
if [ ${#missing[@]} -gt 0 ]; then
    echo "compat/demo.sh: installing ${missing[*]}" >&2
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "compat/demo.sh: needs cargo (a Rust toolchain, e.g. from rustup)" >&2; exit 1; }

cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
PIPEWORK="$ROOT/target/release/pipework"

tag="pwdemo$$"
HOST="$tag-host" GUEST="$tag-xcatmn" NODE="$tag-node"
PIPEWORK_STATE_DIR="$(mktemp -d -t pwdemo.XXXXXX)"
export PIPEWORK_STATE_DIR
cleanup() {
    for ns in "$HOST" "$GUEST" "$NODE"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$PIPEWORK_STATE_DIR"
}
trap cleanup EXIT

for ns in "$HOST" "$GUEST" "$NODE"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
# The Docker host's bridge, as the runbook's mkbridge makes it.
ip -n "$HOST" link add br0 type bridge forward_delay 0
ip -n "$HOST" link set br0 up
ip -n "$HOST" addr add 10.5.106.1/24 dev br0
# Docker's firewall, as a Docker host has it: bridged frames go through
# iptables' FORWARD hook (br_netfilter), whose policy is DROP, with the
# DOCKER-USER chain Docker keeps for operators' rules.
ip netns exec "$HOST" sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1
ip netns exec "$HOST" iptables -P FORWARD DROP
ip netns exec "$HOST" iptables -N DOCKER-USER
ip netns exec "$HOST" iptables -A DOCKER-USER -j RETURN
ip netns exec "$HOST" iptables -A FORWARD -j DOCKER-USER
# A compute node on the same bridge.
ip -n "$HOST" link add node0 type veth peer name eth0 netns "$NODE"
ip -n "$HOST" link set node0 master br0 up
ip -n "$NODE" addr add 10.5.106.50/24 dev eth0
ip -n "$NODE" link set eth0 up

run() { echo "+ $*"; "$@"; }
echo "== the plan"
run ip netns exec "$HOST" "$PIPEWORK" --dry-run br0 "netns:$GUEST" 10.5.106.101/24@10.5.106.1
echo "== the runbook's command"
start=$(date +%s%N)
run ip netns exec "$HOST" "$PIPEWORK" br0 "netns:$GUEST" 10.5.106.101/24@10.5.106.1
echo "   (took $(( ($(date +%s%N) - start) / 1000 )) us, ip netns exec included)"
echo "== inside the guest"
run ip -n "$GUEST" -br addr show dev eth1
run ip -n "$GUEST" route
echo "== on the docker host"
run ip -n "$HOST" -br link show master br0
echo "== Docker's firewall: FORWARD drops by policy; pipework let br0's own traffic through"
run ip netns exec "$HOST" iptables -S FORWARD
run ip netns exec "$HOST" iptables -S DOCKER-USER
echo "== what pipework remembers of it"
run ip netns exec "$HOST" "$PIPEWORK" show
echo "== the compute node and the docker host reach the guest"
run ip netns exec "$NODE" ping -c 2 -W 2 10.5.106.101
run ip netns exec "$HOST" ping -c 1 -W 2 10.5.106.101
echo "demo: OK"
