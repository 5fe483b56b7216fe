"""The console: TensorFlow's chatter left out, each traceback once, floods counted, every line prefixed."""

import io

from controller.status.console import Console, noise

TRACE = ["Traceback (most recent call last):", '  File "train.py", line 3, in <module>', "    boom()",
         "ValueError: bad batch on worker-1"]


def shown(*calls, verbose=False) -> list[str]:
    out = io.StringIO()
    console = Console(out, verbose=verbose)
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
    assert lines == ["(chief-0) Failed to register function remotely: worker-0 unavailable",
                     "(chief-0) ... 299 more line(s) like: Failed to register function remotely"]
    assert shown(("chief-0", flood)) == []  # as C++ warnings they are noise anyway
