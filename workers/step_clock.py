"""The parts of each training step of Keras' ``fit``, timed inside the step: input, compute and peers.

``fit`` fetches each batch inside its compiled train function, so no Python
code runs between "waiting for the batch" and "computing on it". The clock
puts TensorFlow's own ``tf.timestamp()`` ops into the step instead, by
wrapping the model's ``train_step`` and its optimizer's
``aggregate_gradients`` (the all-reduce of the gradients across replicas and
workers) before ``fit`` traces them, and times each call of the train
function from Python:

- input: from the step's graph starting (a timestamp with no input, which
  runs at once while the batch is still being fetched) to the batch's
  arrival (a timestamp with the batch as its control input);
- in the step, from the batch's arrival to its end (a timestamp after the
  optimizer's step count is read, so after the update): compute, and,
  around ``aggregate_gradients``, the all-reduce, where a task waits for its
  peers (and the gradients travel);
- the loop (``loop_s``): the rest of each call of the train function (calling
  a ``tf.function`` and returning from it) and the time between calls (Keras'
  loop and its callbacks).

The graph's totals accumulate in float64 variables of the task's own
(outside the strategy: none is mirrored, no collective is added) and are read
once per epoch. The first step of each epoch is not timed (its wait includes
the epoch's new iterator). A model compiled with ``jit_compile`` (XLA cannot
compile a timestamp), one under ParameterServerStrategy (its steps run on
other tasks), one whose train function was traced before the clock was put
in, and any on a GPU are not timed: their windows carry wall and CPU time
alone. On a GPU a timestamp after the step would need a control edge from
the GPU's last op to the CPU, a copy that waits for the stream: a sync each
step, which would take away the overlap of the host's next step with the
device's work, and is not checked on a device yet.
"""

from __future__ import annotations

import time

import tensorflow as tf
from tensorflow.python.ops import resource_variable_ops

_clocks: dict[int, StepClock] = {}  # one per model: Keras keeps a traced train function across fits
_ZERO = 0.0


def _local(value: float):
    """A variable of this process alone, whatever strategy's scope this runs in (a strategy's scope would
    mirror it, and make every read and write a collective)."""
    with tf.init_scope():
        return resource_variable_ops.ResourceVariable(value, dtype=tf.float64, trainable=False)


def _after(values) -> list:
    return [t for t in tf.nest.flatten(values, expand_composites=True) if tf.is_tensor(t)]


class StepClock:
    def __init__(self, model):
        self.timed, self.fetch, self.in_step, self.peers = _local(0.0), _local(0.0), _local(0.0), _local(0.0)
        self.model = model
        self._train_step = model.train_step
        self._aggregate = getattr(model.optimizer, "aggregate_gradients", None)
        model.train_step = self._timed_step
        if self._aggregate is not None:
            model.optimizer.aggregate_gradients = self._timed_aggregate
        self._function = None
        self._calls_s = self._loop_s = 0.0
        self._returned: float | None = None  # None: the epoch's first call is next (not timed)

    def wrap(self, train_function):
        """``fit``'s train function, each call timed from Python; the same wrapper when it is one already."""
        if getattr(train_function, "_tfray_clock", None) is self:
            return train_function
        self._function = train_function

        def timed(iterator):
            called = time.perf_counter()
            try:
                return self._function(iterator)
            finally:
                returned = time.perf_counter()
                if self._returned is not None:
                    self._calls_s += returned - called
                    self._loop_s += called - self._returned
                self._returned = returned

        timed._tfray_clock = self
        return timed

    def _timed_step(self, data):
        begun = tf.timestamp()  # no input: runs as the step's graph starts, while its batch is still fetched
        with tf.control_dependencies(_after(data)):
            start = tf.timestamp()
        peers_before = self.peers.read_value()
        outputs = self._train_step(data)
        with tf.control_dependencies(_after(outputs) + [self.model.optimizer.iterations.read_value(),
                                                        self.peers.read_value()]):
            end = tf.timestamp()
        counted = tf.cast(self.timed.read_value() >= 0, tf.float64)  # timed < 0: the epoch's first step
        self.fetch.assign_add(counted * tf.maximum(start - begun, tf.constant(0.0, tf.float64)))
        self.in_step.assign_add(counted * (end - start))
        self.peers.assign(peers_before + counted * (self.peers.read_value() - peers_before))
        self.timed.assign(tf.maximum(self.timed.read_value() + 1.0, tf.constant(0.0, tf.float64)))
        return outputs

    def _timed_aggregate(self, grads_and_vars):
        grads_and_vars = list(grads_and_vars)
        with tf.control_dependencies(_after([g for g, _ in grads_and_vars])):
            start = tf.timestamp()
        out = self._aggregate(grads_and_vars)
        with tf.control_dependencies(_after([g for g, _ in out])):
            self.peers.assign_add(tf.timestamp() - start)
        return out

    def epoch_begins(self) -> None:
        self.timed.assign(-1.0)  # the epoch's first step waits for its new iterator: not timed
        self._returned = None

    def read(self) -> dict:
        """The totals since the last read (seconds, and the steps timed), set back to zero: input_s, compute_s,
        peers_s and loop_s (between the steps' graphs: Keras' loop, and calling the train function)."""
        steps, fetch, in_step, peers = (float(v.numpy()) for v in (self.timed, self.fetch, self.in_step, self.peers))
        for variable in (self.fetch, self.in_step, self.peers):
            variable.assign(0.0)
        self.timed.assign(tf.minimum(self.timed.read_value(), _ZERO))
        calls, loop = self._calls_s, self._loop_s
        self._calls_s = self._loop_s = 0.0
        return {"steps": int(max(steps, 0)), "input_s": round(fetch, 6),
                "compute_s": round(max(0.0, in_step - peers), 6), "peers_s": round(peers, 6),
                "loop_s": round(loop + max(0.0, calls - in_step - fetch), 6)}


def clock_for(model, pss: bool) -> StepClock | None:
    """The model's step clock, put in now if its train function is still to be traced (and ``fit``'s train
    function wrapped); None where it cannot be (see the module's docstring)."""
    clock = _clocks.get(id(model))
    if clock is None:
        train_function = getattr(model, "train_function", None)
        traced = getattr(train_function, "experimental_get_tracing_count", lambda: 0)()
        if pss or getattr(model, "_jit_compile", False) or traced or tf.config.list_logical_devices("GPU"):
            return None
        clock = _clocks[id(model)] = StepClock(model)
    if getattr(model, "train_function", None) is not None:
        model.train_function = clock.wrap(model.train_function)
    return clock
