"""Every job under a storage path, one row each: what ``tfray jobs`` lists.

A job is a folder of the storage path with a ``job.json`` (``<storage_path>/<name>``,
``protocol.layout``); each is read by the reader of ``tfray status``
(``controller.status.gather.folder_view``), so the list and a job's status
never disagree. A folder whose record cannot be read is listed as
``UNREADABLE`` with the reason: one torn record does not hide the others.
Folders a ``tfray run --fresh`` set aside (``<name>.old-<time>``) are jobs of
their own here, under that name.
"""

from __future__ import annotations

import time
from pathlib import Path

from controller.machine.record import ENDED, JOB_STATE_FILE, TornRecordError
from controller.report.progress import epochs_text
from controller.states.text import duration
from controller.status.gather import folder_view

UNREADABLE = "UNREADABLE"  # the state of a job whose job.json is not a job record
COLUMNS = ("JOB", "STATE", "ATTEMPT", "STEP", "EPOCH", "UPDATED", "CHECKPOINT")


def job_folders(storage: Path) -> list[Path]:
    """The job folders under ``storage`` by name (``storage`` itself when it is one)."""
    if (storage / JOB_STATE_FILE).is_file():
        return [storage]
    return sorted(p for p in storage.iterdir() if (p / JOB_STATE_FILE).is_file())


def job_rows(storage: Path, now: float | None = None) -> list[dict]:
    """One JSON-able row per job under ``storage``: its state and attempt, the chief's step and epoch, how long
    ago its record or its chief last said anything, and its newest complete checkpoint."""
    now = time.time() if now is None else now
    rows = []
    for folder in job_folders(storage):
        try:
            view = folder_view(folder, folder.name, now=now)
        except TornRecordError as err:
            rows.append({"job": folder.name, "state": UNREADABLE, "error": str(err), "job_dir": str(folder)})
            continue
        rows.append(_row(view))
    return rows


def _row(view: dict) -> dict:
    training = view.get("training") or {}
    checkpoint = view.get("checkpoint")
    # The newer of the record's last change and the chief's last report: a training job writes its metrics
    # more often than its record.
    ages = [age for age in (view.get("updated_s_ago"), training.get("reported_s_ago")) if age is not None]
    return {"job": view["job"], "state": view["state"], "attempt": view.get("attempt"),
            "driver": view.get("driver"), "step": training.get("step"), "epoch": training.get("epoch"),
            "total_epochs": training.get("total_epochs"), "updated_s_ago": min(ages) if ages else None,
            "checkpoint": None if checkpoint is None else {k: checkpoint[k] for k in ("step", "epoch", "path",
                                                                                       "age_s")},
            "job_dir": view["job_dir"]}


def render_jobs(rows: list[dict]) -> str:
    """The rows as a table, one job a line, with a note under it for what a cell cannot say."""
    cells = [COLUMNS] + [_cells(row) for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    out = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells]
    if any(_driver_gone(row) for row in rows):
        out.append("* no driver holds the job's lease here: it stopped mid-run (the next `tfray run` marks the "
                   "attempt DRIVER_LOST) or runs on another machine")
    out.extend(f"{row['job']}: {row['error']}" for row in rows if row["state"] == UNREADABLE)
    return "\n".join(out)


def _driver_gone(row: dict) -> bool:
    return row["state"] not in ENDED | {UNREADABLE, "NOT_STARTED"} and not row.get("driver")


def _cells(row: dict) -> tuple[str, ...]:
    if row["state"] == UNREADABLE:
        return (row["job"], UNREADABLE, "-", "-", "-", "-", "-")
    checkpoint = row.get("checkpoint")
    return (row["job"], row["state"] + ("*" if _driver_gone(row) else ""), _text(row.get("attempt")),
            _text(row.get("step")),
            epochs_text(row["epoch"], row.get("total_epochs")) if row.get("epoch") is not None else "-",
            f"{duration(row['updated_s_ago'])} ago" if row.get("updated_s_ago") is not None else "-",
            "-" if checkpoint is None else f"step {checkpoint['step']}" + (
                f", {duration(checkpoint['age_s'])} old" if checkpoint.get("age_s") is not None else ""))


def _text(value) -> str:
    return "-" if value is None else str(value)
