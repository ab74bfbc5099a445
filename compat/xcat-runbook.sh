#!/bin/bash
# Replays the pipework part of the runbook "Run xCAT in Docker Container"
# (shared/docs/xcat-in-docker.rst) with its names and addresses.
#
#   PIPEWORK  the pipework binary under test
#   HOSTNS    network namespace standing in for the Docker host "dockerhost1"
#   CTR       the container "xcatmn", already made the runbook's way:
#               docker create -it --dns=10.5.106.1 --dns-search=clusters.com \
#                 --hostname=xcatmn --name=$CTR --add-host=xcatmn:10.5.106.101 \
#                 --net=none --cap-add=NET_ADMIN <image> /bin/sh
#               docker start $CTR
#             (--cap-add=NET_ADMIN stands in for --privileged=true, which this
#             kernel refuses; the xCAT image is replaced by a busybox one.)
#
# tests/it/compat.rs runs it and checks the result.
set -euo pipefail
: "${PIPEWORK:?}" "${HOSTNS:?}" "${CTR:?}"
set -x

# "Create a customized bridge on the Docker host" (/tmp/mkbridge, with ip(8)
# for brctl; there is no eth0 to move onto the bridge here).
ip netns exec "$HOSTNS" ip link add br0 type bridge     # brctl addbr br0
ip netns exec "$HOSTNS" ip link set br0 type bridge forward_delay 0   # brctl setfd br0 0
ip netns exec "$HOSTNS" ip link set br0 up
ip netns exec "$HOSTNS" ip addr add dev br0 10.5.106.1/24

# "Setup the network for the Docker container"
ip netns exec "$HOSTNS" "$PIPEWORK" br0 "$CTR" 10.5.106.101/24@10.5.106.1
