#!/usr/bin/env bash
# Builds the cluster's wheelhouse on the head: every wheel a node needs to
# install this project at the exact versions of constraints.txt, downloaded once.
# The configs run it from head_setup_commands, after node_setup.sh; their
# cluster_synced_files then copy the folder to each worker the autoscaler starts,
# whose node_setup.sh installs from it with --no-index: a replacement spot node
# reaches no package index and downloads nothing (docs/clusters.md measures it).
#
# The wheels are for the head's platform and Python; a worker with another
# Python minor or CPU architecture finds no match and node_setup.sh falls back to
# the index. Nothing is downloaded again while the constraints, pyproject.toml
# and the head's Python stay the same, so a second `ray up` costs nothing here.
# The folder is swapped in whole, with its COMPLETE marker written last, so a
# worker never installs from a half-built one.
set -euo pipefail

project="${TFRAY_PROJECT:-$HOME/tfray}"
venv="${TFRAY_VENV:-$HOME/tfray-venv}"
wheels="${TFRAY_WHEELHOUSE:-$HOME/tfray-wheels}"
constraints="$project/cluster_configs/constraints.txt"
python="$venv/bin/python"

# What the wheelhouse was built from: when none of it changed there is nothing to do.
stamp="$( { cat "$constraints" "$project/pyproject.toml"; "$python" -VV; uname -m; } | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$wheels/COMPLETE" 2>/dev/null)" = "$stamp" ]; then
  echo "tfray wheelhouse up to date: $wheels"
  exit 0
fi

partial="$wheels.partial"
rm -rf "$partial"
mkdir -p "$partial"
# The project's dependencies under the constraints, plus what a node needs to build
# the project itself without an index (pyproject's build-system) and the pip the
# head runs, so every node installs with the same pip.
"$python" -m pip download --quiet --dest "$partial" -c "$constraints" "$project" \
  "setuptools>=77" wheel "pip==$("$python" -m pip --version | cut -d' ' -f2)"
# pip download saves the project itself as an archive of the folder: nodes install
# the folder that file_mounts synced instead, so a stale copy is never picked.
rm -f "$partial"/tfray-*
echo "$stamp" > "$partial/COMPLETE"
rm -rf "$wheels"
mv "$partial" "$wheels"
echo "tfray wheelhouse built: $wheels ($(find "$wheels" -name '*.whl' | wc -l) wheels, $(du -sh "$wheels" | cut -f1))"
