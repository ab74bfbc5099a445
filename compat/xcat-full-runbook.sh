#!/bin/bash
# Replays the runbook "Run xCAT in Docker Container"
# (shared/docs/xcat-in-docker.rst) from "Create a customized bridge" on, with
# its names and addresses, on a Docker host whose eth0 still faces the
# compute nodes: `pipework mkbridge` stands in for the runbook's /tmp/mkbridge.
#
#   PIPEWORK  the pipework binary under test
#   HOSTNS    network namespace standing in for the Docker host "dockerhost1":
#             eth0 holds 10.5.106.1/24, its veth peer is the node's eth0
#   NODENS    network namespace standing in for a compute node, 10.5.106.20/24
#   CTR       the container "xcatmn", created the runbook's way, not started:
#               docker create -it --dns=10.5.106.1 --dns-search=clusters.com \
#                 --hostname=xcatmn --name=$CTR --add-host=xcatmn:10.5.106.101 \
#                 --add-host=c910f05c01bc06:10.5.106.1 \
#                 --net=none --cap-add=NET_ADMIN <image> /bin/sh
#             (--cap-add=NET_ADMIN stands in for --privileged=true, which this
#             kernel refuses; the xCAT image is replaced by a busybox one.)
#
# tests/it/compat.rs runs it and checks the result.
set -euo pipefail
: "${PIPEWORK:?}" "${HOSTNS:?}" "${NODENS:?}" "${CTR:?}"
set -x

# "Create a customized bridge on the Docker host". The runbook's script
#   brctl addbr br0; brctl setfd br0 0; ip addr del dev eth0 10.5.106.1/24
#   brctl addif br0 eth0; ip link set br0 up; ip addr add dev br0 10.5.106.1/24
# cuts eth0 off midway and loses its routes; this moves them in one go.
ip netns exec "$HOSTNS" "$PIPEWORK" mkbridge br0 eth0
# What the runbook warns about: the node must still reach dockerhost1.
ip netns exec "$NODENS" ping -c 3 -i 0.2 -W 1 10.5.106.1

# "Start the Docker container"
docker start "$CTR"

# "Setup the network for the Docker container"
ip netns exec "$HOSTNS" "$PIPEWORK" br0 "$CTR" 10.5.106.101/24@10.5.106.1
