#!/usr/bin/env bash
# How long one cluster node's setup takes on this machine: from the package index
# (a node with no wheelhouse) against from the head's wheelhouse (a replacement
# node), each in a fresh virtualenv with no pip cache, running the shipped
# cluster_configs/node_setup.sh and build_wheelhouse.sh on a copy of this
# repository as `ray up` would sync it. docs/clusters.md quotes its output.
#
#   bash bench/node_setup_time.sh [WORK_DIR]   # default /tmp/tfray-node-setup; needs ~3 GB there
#
# The wheelhouse node runs with every proxy variable pointed at a closed port, so
# any access to the package index would fail it. Downloads ~1 GB twice.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
W="${1:-/tmp/tfray-node-setup}"
PY="${TFRAY_PYTHON:-$(command -v python3)}"
PY="$("$PY" -c 'import sys; print(sys.executable)')"  # a real path: the runs below change HOME
closed=http://127.0.0.1:9
quiet() { grep -v "is ignored: it is neither"; }  # this machine's pip.conf names absent local indexes

rm -rf "$W" && mkdir -p "$W/tfray"
(cd "$repo" && git ls-files -co --exclude-standard -z | xargs -0 tar -c) | tar -x -C "$W/tfray"
for h in home-index home-wheels; do mkdir -p "$W/$h/.ray" && echo token > "$W/$h/.ray/auth_token"; done
export PIP_NO_CACHE_DIR=1 TFRAY_PROJECT="$W/tfray" TFRAY_PYTHON="$PY"
echo "== $("$PY" -V), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== 1. a node with no wheelhouse: node_setup.sh installs from the package index"
/usr/bin/time -f "wall %e s" env HOME="$W/home-index" TFRAY_VENV="$W/venv-index" TFRAY_WHEELHOUSE="$W/none" \
  bash "$W/tfray/cluster_configs/node_setup.sh" 2>&1 | quiet
echo "== 2. the head builds the wheelhouse once: build_wheelhouse.sh"
/usr/bin/time -f "wall %e s" env HOME="$W/home-index" TFRAY_VENV="$W/venv-index" TFRAY_WHEELHOUSE="$W/wheels" \
  bash "$W/tfray/cluster_configs/build_wheelhouse.sh" 2>&1 | quiet
echo "== 3. a replacement node: node_setup.sh from the wheelhouse, the index unreachable"
/usr/bin/time -f "wall %e s" env HOME="$W/home-wheels" TFRAY_VENV="$W/venv-wheels" TFRAY_WHEELHOUSE="$W/wheels" \
  HTTPS_PROXY=$closed HTTP_PROXY=$closed https_proxy=$closed http_proxy=$closed \
  bash "$W/tfray/cluster_configs/node_setup.sh" 2>&1 | quiet
echo "== load $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -x "$W/venv-index/bin/pip" ] && [ -x "$W/venv-wheels/bin/pip" ] &&
   diff <("$W/venv-index/bin/pip" freeze | grep -v '^tfray') <("$W/venv-wheels/bin/pip" freeze | grep -v '^tfray'); then
  echo "== both nodes: the same pip freeze ($("$W/venv-index/bin/pip" freeze | wc -l) packages)"
fi
