#!/bin/bash
# The passthrough lines of the behaviour contract
# (shared/docs/pipework-behaviour.md): `ip route`, `ip rule` and `tc`
# arguments given after the guest, applied inside the guest.
#
#   PIPEWORK  the pipework binary under test
#   HOSTNS    network namespace standing in for the Docker host
#   CTR       a running container with --net=none
#
# tests/it/compat.rs runs it and checks the result.
set -euo pipefail
: "${PIPEWORK:?}" "${HOSTNS:?}" "${CTR:?}"
set -x
pw() { ip netns exec "$HOSTNS" "$PIPEWORK" "$@"; }

# The runbook's attach first, so the container has an eth1.
pw br0 "$CTR" 10.5.106.101/24@10.5.106.1
# Static routes, in the main table and in table 100.
pw route "$CTR" add 10.20.0.0/16 via 10.5.106.254
pw route "$CTR" add 192.168.50.0/24 via 10.5.106.254 dev eth1 table 100
# Policy routing: the container's address looks up table 100.
pw rule "$CTR" add from 10.5.106.101 table 100 priority 1000
# `show` runs the real ip inside the container.
pw route "$CTR" show
# Traffic shaping with tc.
pw tc "$CTR" qdisc add dev eth1 root tbf rate 1mbit burst 32kbit latency 400ms
