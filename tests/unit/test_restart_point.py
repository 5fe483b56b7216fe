"""A restart says where it starts from, and when a script starts over, why: its own checkpoints are not under
AIP_CHECKPOINT_DIR. (A custom loop checkpointing into a temp folder of its process wrote to a new folder at
each restart and never read the old one, and nothing said so: it looked like the job lost its progress.)"""

import pytest

from controller.machine.restore import OWN_CHECKPOINTS_DOC, restart_point
from controller.states.state import JobState
from protocol.layout import output_dirs
from tests.unit import fakes
from tests.unit.fakes import W1

BACKUPS = "/runs/job/backups"


def test_a_tfray_checkpoint_is_where_every_entrypoint_restarts_from():
    for kind in ("function", "script", "module"):
        assert restart_point(kind, 40, backups_hold_files=False, backups_dir=BACKUPS) == "step 40"


def test_what_the_code_saved_under_aip_checkpoint_dir_is_named_when_there_is_no_tfray_checkpoint():
    for kind in ("function", "script"):
        point = restart_point(kind, None, backups_hold_files=True, backups_dir=BACKUPS)
        assert point.startswith(f"what the code saved under AIP_CHECKPOINT_DIR ({BACKUPS})")


def test_a_script_that_saved_nothing_where_it_is_read_again_is_told_why_it_starts_over():
    point = restart_point("script", None, backups_hold_files=False, backups_dir=BACKUPS)
    assert point == (f"the beginning: the script saved nothing under AIP_CHECKPOINT_DIR ({BACKUPS}); checkpoints "
                     f"it writes elsewhere (e.g. a temp folder) are not read after a restart ({OWN_CHECKPOINTS_DOC})")
    assert restart_point("module", None, False, BACKUPS).startswith("the beginning: the module saved nothing")
    # A function's checkpoints go through its task context: none is all there is to say.
    assert restart_point("function", None, False, BACKUPS) == "the beginning (no checkpoint yet)"


@pytest.mark.parametrize("saved_a_backup", [False, True])
def test_the_restart_line_says_it(tmp_path, caplog, saved_a_backup):
    (tmp_path / "train.py").write_text("print('hi')\n")
    spec = fakes.make_spec(tmp_path, entrypoint={"script": str(tmp_path / "train.py")}, failure={"backoff_s": 0})
    backups = output_dirs(spec.job_dir, "chief-0", is_chief=True)["AIP_CHECKPOINT_DIR"]
    controller, group = fakes.running(spec)
    if saved_a_backup:  # what BackupAndRestore leaves when the chief dies mid-epoch
        (backups / "chief").mkdir(parents=True)
        (backups / "chief" / "ckpt-1.index").write_text("")
    else:
        backups.mkdir(parents=True)  # every task makes the folder; the script wrote elsewhere
    caplog.set_level("WARNING", logger="tfray")
    group.ends = [fakes.died(W1)]
    assert controller.step().name is JobState.RECOVERING
    assert controller.step().name is JobState.STARTING
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("restarting the cluster")]
    if saved_a_backup:
        assert line.startswith(f"restarting the cluster (restart 1) from what the code saved under "
                               f"AIP_CHECKPOINT_DIR ({backups})")
    else:
        assert line.startswith(f"restarting the cluster (restart 1) from the beginning: the script saved nothing "
                               f"under AIP_CHECKPOINT_DIR ({backups}); checkpoints it writes elsewhere")
