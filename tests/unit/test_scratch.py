"""A killed actor's scratch folder does not outlive it (protocol/scratch.py)."""

import os
import subprocess
import sys
import tempfile

from protocol.scratch import make_scratch, remove_orphans


def test_a_run_removes_the_scratch_folders_of_actors_that_are_gone_and_keeps_the_living_ones(tmp_path, monkeypatch):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True, timeout=60)
    orphan = tmp_path / f"tfray-run-{dead.stdout.strip()}-abc"
    (orphan / "nested").mkdir(parents=True)
    living = tmp_path / f"tfray-run-{os.getppid()}-def"
    living.mkdir()
    unknown = tmp_path / "tfray-run-xyz"  # no owner in its name: not ours to judge
    unknown.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where mkdtemp makes folders
    mine = make_scratch()
    assert not orphan.exists() and living.exists() and unknown.exists()
    assert os.path.basename(mine).startswith(f"tfray-run-{os.getpid()}-")
    assert remove_orphans(str(tmp_path)) == []  # this process is alive: its folder stays
