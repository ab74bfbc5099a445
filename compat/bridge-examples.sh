#!/bin/bash
# The bridge examples of the behaviour contract
# (shared/docs/pipework-behaviour.md), one container, one line each.
#
#   PIPEWORK  the pipework binary under test
#   HOSTNS    network namespace standing in for the Docker host
#   CTR       a running container with --net=none
#
# tests/it/compat.rs runs it and checks the result.
set -euo pipefail
: "${PIPEWORK:?}" "${HOSTNS:?}" "${CTR:?}"
set -x

# Default container interface eth1, gateway, bridge br1 made on the way.
ip netns exec "$HOSTNS" "$PIPEWORK" br1 "$CTR" 192.168.1.10/24@192.168.1.254
# -i: the container side's name.
ip netns exec "$HOSTNS" "$PIPEWORK" br1 -i eth2 "$CTR" 192.168.2.10/24
# -l: the host side's name too.
ip netns exec "$HOSTNS" "$PIPEWORK" br1 -i eth3 -l vethweb "$CTR" 192.168.3.10/24
# U: a stable MAC derived from a name.
ip netns exec "$HOSTNS" "$PIPEWORK" br1 -i eth4 "$CTR" 192.168.4.10/24 U:myhost.foo.com
# A literal MAC.
ip netns exec "$HOSTNS" "$PIPEWORK" br1 -i eth5 "$CTR" 192.168.5.10/24 02:12:34:56:78:9a
# 0/0: connected, no address.
ip netns exec "$HOSTNS" "$PIPEWORK" br1 -i eth6 "$CTR" 0/0
