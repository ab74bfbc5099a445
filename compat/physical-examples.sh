#!/bin/bash
# The physical-interface examples of the behaviour contract
# (shared/docs/pipework-behaviour.md), one container, one line each.
#
#   PIPEWORK  the pipework binary under test
#   HOSTNS    network namespace standing in for the Docker host, with
#               eth0  a NIC on the LAN 10.5.0.0/24 (gateway 10.5.0.1),
#                     MAC 02:aa:bb:cc:dd:01, not bridged
#               eth9  a spare NIC, given whole to the container
#   CTR       a running container with --net=none
#
# tests/it/compat.rs runs it and checks the result.
set -euo pipefail
: "${PIPEWORK:?}" "${HOSTNS:?}" "${CTR:?}"
set -x

# A macvlan child of eth0 as eth1, default route via the LAN's gateway.
ip netns exec "$HOSTNS" "$PIPEWORK" eth0 "$CTR" 10.5.0.5/24@10.5.0.1
# -i: the container side's name.
ip netns exec "$HOSTNS" "$PIPEWORK" eth0 -i eth2 "$CTR" 10.5.0.6/24
# U: a stable MAC derived from a name.
ip netns exec "$HOSTNS" "$PIPEWORK" eth0 -i eth3 "$CTR" 10.5.0.7/24 U:myhost.foo.com
# mac: the host interface picked by its hardware address (eth0's).
ip netns exec "$HOSTNS" "$PIPEWORK" mac:02:aa:bb:cc:dd:01 -i eth4 "$CTR" 10.5.0.8/24
# --direct-phys: eth9 itself moves into the container, keeping its MAC.
ip netns exec "$HOSTNS" "$PIPEWORK" --direct-phys eth9 -i eth5 "$CTR" 10.9.0.5/24
# --wait, run inside the container (its network namespace): eth5 is there.
nsenter --net="/proc/$(docker inspect -f '{{.State.Pid}}' "$CTR")/ns/net" "$PIPEWORK" --wait -i eth5 --timeout 10
