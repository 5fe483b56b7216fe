#!/usr/bin/env bash
# Sets up one node of a `ray up` cluster; the setup_commands of every config in
# this folder run it, on the head and on every worker the autoscaler adds.
#
# It makes a virtualenv (~/tfray-venv) holding this project, synced to ~/tfray by
# the config's file_mounts, with exactly the versions in constraints.txt, so every
# node and the job's driver on the head run the same Ray and TensorFlow. Where a
# GPU is present it adds TensorFlow's CUDA libraries (the image brings the NVIDIA
# driver). It puts the virtualenv first on PATH for the shells Ray's updater
# opens. Safe to run again: `ray up` reruns it when the project's files change.
#
# Where the head's wheelhouse (~/tfray-wheels, build_wheelhouse.sh, synced to each
# worker by cluster_synced_files) is complete, everything comes from it with
# --no-index: a replacement node downloads nothing. Without one (the head's first
# setup, or wheels that do not fit this node) it installs from the package index.
set -euo pipefail

project="${TFRAY_PROJECT:-$HOME/tfray}"
venv="${TFRAY_VENV:-$HOME/tfray-venv}"
python="${TFRAY_PYTHON:-python3}"
wheels="${TFRAY_WHEELHOUSE:-$HOME/tfray-wheels}"

# The token is a password, and rsync kept the mode of the local copy (Ray writes it 0644).
chmod 600 "$HOME/.ray/auth_token"

# The pinned NumPy, scikit-learn and pyarrow need Python >= 3.11 (Ubuntu 24.04 has 3.12);
# every node of one cluster must also have the same Python minor version.
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else
  f"tfray: {sys.executable} is Python {sys.version.split()[0]}; the pinned versions need >= 3.11: "
  "use an Ubuntu 24.04 image or point TFRAY_PYTHON at a newer python")'

if [ ! -x "$venv/bin/python" ]; then
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    # Ubuntu ships venv's pip bootstrap as a separate package. Cloud-init may hold
    # the apt lock during the first minutes of a VM: wait for it instead of failing.
    rm -rf "$venv"
    sudo DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq python3-venv
    "$python" -m venv "$venv"
  fi
fi

pip=("$venv/bin/python" -m pip install --quiet)
constraints="$project/cluster_configs/constraints.txt"
offline=("--no-index" "--find-links" "$wheels")
if [ -f "$wheels/COMPLETE" ] && "${pip[@]}" "${offline[@]}" --upgrade pip &&
   "${pip[@]}" "${offline[@]}" -c "$constraints" "$project"; then
  echo "tfray: installed from the wheelhouse $wheels, no package index"
else
  if [ -f "$wheels/COMPLETE" ]; then
    echo "tfray: the wheelhouse $wheels does not fit this node; installing from the package index"
  fi
  "${pip[@]}" --upgrade pip
  "${pip[@]}" -c "$constraints" "$project"
fi
# TensorFlow's CUDA libraries stay out of the wheelhouse, which every CPU node
# receives too: a GPU node fetches them from the index (docs/clusters.md).
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  "${pip[@]}" -c "$constraints" "tensorflow[and-cuda]"
fi

line="source $venv/bin/activate"
grep -qxF "$line" "$HOME/.bashrc" 2>/dev/null || echo "$line" >> "$HOME/.bashrc"
"$venv/bin/python" -c "import controller, ray; print('tfray node ready: Ray', ray.__version__)"
