"""The console: TensorFlow's chatter left out, each traceback once, floods counted, every line prefixed."""

import io

from controller.status.console import Console, noise

TRACE = ["Traceback (most recent call last):", '  File "train.py", line 3, in <module>', "    boom()",
         "ValueError: bad batch on worker-1"]


def shown(*calls, verbose=False, progress_of=None) -> list[str]:
    out = io.StringIO()
    console = Console(out, verbose=verbose, progress_of=progress_of)
    for task, lines in calls:
        console.lines(task, lines)
    console.finish()
    return out.getvalue().splitlines()


def test_tensorflows_banners_and_cuda_probing_are_left_out_but_not_real_errors():
    assert noise("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert noise("I0000 00:00:1796022466.702749   17172 cudart_stub.cc:31] Could not find cuda drivers")
    assert noise("E0000 00:00:1796022475.515577   17172 cuda_platform.cc:52] failed call to cuInit: UNKNOWN")
    assert not noise("E0000 00:00:1796022475.515577   17172 grpc_server.cc:52] port in use")
    assert not noise("epoch 3: loss 0.2")
    lines = shown(("chief-0", ["I0000 00:00:1.5 7 cudart_stub.cc:31] no cuda", "training starts"]))
    assert lines == ["(chief-0) training starts"]
    assert len(shown(("chief-0", ["I0000 00:00:1.5 7 cudart_stub.cc:31] no cuda"]), verbose=True)) == 1


def test_a_traceback_is_shown_once_with_the_tasks_it_hit():
    same = [line.replace("worker-1", "worker-2") for line in TRACE]
    lines = shown(("worker-1", TRACE), ("worker-2", same))
    assert lines[:4] == [f"(worker-1) {line}" for line in TRACE]
    assert lines[4:] == ["(worker-2) (the same traceback as worker-1) ValueError: bad batch on worker-2"]


def test_a_flood_of_one_message_is_its_first_line_and_a_count():
    flood = [f"W0000 00:00:1.0 9 x.cc:1] Failed to register function remotely on {i}" for i in range(3)]
    lines = shown(("chief-0", [f"Failed to register function remotely: worker-{i} unavailable" for i in range(300)]))
    counted = ("(chief-0) ... 299 more like: Failed to register/remove function remotely (299 line(s) left out "
               "here, all in chief-0's log)")
    assert lines == ["(chief-0) Failed to register function remotely: worker-0 unavailable", counted]
    assert shown(("chief-0", flood)) == []  # as C++ warnings they are noise anyway


def grpc_failure(verb: str, second: int) -> list[str]:
    """One of TF's messages about a function it could not register on (or remove from) a lost worker."""
    first = (f"E0000 00:00:17960225{second:02d}.1   17172 context.cc:1100] Failed to {verb} function remotely due "
             "to UNAVAILABLE: failed to connect to all addresses")
    where = ("Additional GRPC error information from remote target /job:worker/replica:0/task:1 while calling "
             "/tensorflow.eager.EagerService/Enqueue:")
    details = ':{"created":"@1796022500.1","description":"Error received from peer ipv4:127.0.0.1:23456","grpc_status":14}'
    return [first, where, details]


def test_a_lost_workers_grpc_flood_is_its_first_line_and_one_line_that_counts_it_and_names_the_worker():
    flood = [line for i in range(55) for line in grpc_failure("register" if i % 2 else "remove", i)]
    assert len(flood) == 165
    lines = shown(("chief-0", ["epoch 1 done", *flood]), ("worker-0", ["serving"]), ("chief-0", ["epoch 2 done"]))
    counted = ("(chief-0) ... 54 more like: Failed to register/remove function remotely (about worker-1; 164 line(s) "
               "left out here, all in chief-0's log)")
    assert lines == ["(chief-0) epoch 1 done", f"(chief-0) {flood[0]}", "(worker-0) serving", "(chief-0) epoch 2 done",
                     counted]
    assert len(shown(("chief-0", flood), verbose=True)) == 165


def keras_bar(epoch: int, steps: int = 4) -> list[str]:
    """What fit(verbose=1) prints for one epoch on a terminal: one line, redrawn at each step (a backspace
    over the last drawing, then a carriage return), as a task's output reaches the console: split at each
    carriage return."""
    drawn = [f"{step}/{steps} [{'=' * step}>{'.' * (steps - step)}] - ETA: {steps - step}s - loss: {1 / step:.4f}"
             for step in range(1, steps + 1)]
    return [f"Epoch {epoch}/2", *(text + "\b" * len(text) for text in drawn[:-1]), drawn[-1] + " - 1s 9ms/step"]


def test_only_the_chiefs_progress_bar_reaches_the_console_and_as_a_terminal_would_show_it():
    lines = shown(("chief-0", keras_bar(1)), ("worker-0", keras_bar(1)), ("worker-1", keras_bar(1)),
                  ("worker-0", ["worker-0 saved its checkpoint", *keras_bar(2)]), ("chief-0", keras_bar(2)),
                  progress_of="chief-0")
    clean = [line.rstrip("\b") for line in keras_bar(1)]
    assert lines[:5] == [f"(chief-0) {line}" for line in clean]
    assert lines[5:] == [
        "(worker-0) (its progress bar is left out here: chief-0's is shown; `tfray logs` has worker-0's)",
        "(worker-1) (its progress bar is left out here: chief-0's is shown; `tfray logs` has worker-1's)",
        "(worker-0) worker-0 saved its checkpoint",
        *[f"(chief-0) {line.rstrip(chr(8))}" for line in keras_bar(2)]]
    assert not any("\b" in line for line in lines)
    assert len(shown(("chief-0", keras_bar(1)), ("worker-0", keras_bar(1)), progress_of="chief-0",
                     verbose=True)) == 10  # --verbose: every line
    assert len(shown(("chief-0", keras_bar(1)), ("worker-0", keras_bar(1)))) == 10  # no task named: every bar


def test_fit_verbose_2_lines_of_the_examples_are_shown_for_the_chief_alone():
    """examples/digits.py fits with verbose=2: each task's log gets two lines an epoch; the console only the
    chief's (the others' would repeat them once per worker)."""
    epoch = ["Epoch 1/15", ("44/44 - 1s - loss: 1.2859 - accuracy: 0.6903 - val_loss: 0.5514 - val_accuracy: 0.8969 "
                            "- 833ms/epoch - 19ms/step")]
    lines = shown(("chief-0", epoch), ("worker-0", epoch), ("worker-1", epoch), ("worker-0", epoch),
                  progress_of="chief-0")
    assert lines == [*(f"(chief-0) {line}" for line in epoch),
                     "(worker-0) (its progress bar is left out here: chief-0's is shown; `tfray logs` has worker-0's)",
                     "(worker-1) (its progress bar is left out here: chief-0's is shown; `tfray logs` has worker-1's)"]
