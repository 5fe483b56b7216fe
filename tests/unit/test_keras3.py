"""Keras 3 in a multi-task job: `validate` refuses it from the entrypoint's source, without running it; a task
whose training failed inside it says so in one sentence (keras-team/keras#20585, #18624)."""

import ast
import importlib.util
import sys
import textwrap

import pytest

from controller.spec import SpecError, check_entrypoint, find_keras3_imports, parse_spec
from protocol.keras3 import KERAS3_UNSUPPORTED
from protocol.wire import FailureCause
from workers.keras3_failure import explain
from workers.task_actor import error_text

MWMS = {"name": "job", "strategy": "multi_worker_mirrored", "roles": {"worker": {"count": 2}},
        "entrypoint": {"script": "train.py"}, "storage_path": "runs"}
PSS = {**MWMS, "strategy": "parameter_server",
       "roles": {"chief": {"count": 1}, "worker": {"count": 1}, "ps": {"count": 1}}}
MIRRORED = {**MWMS, "strategy": "mirrored", "roles": {"chief": {"count": 1}}}


def imports_in(source: str) -> list[str]:
    return [ast.unparse(node) for node in find_keras3_imports(ast.parse(textwrap.dedent(source)))]


@pytest.mark.parametrize("source", [
    "import keras",
    "import keras as K",
    "import keras.layers",
    "import os, keras.layers as L",
    "from keras import layers",
    "from keras.layers import Dense",
    "def build():\n    import keras\n",
    "try:\n    import keras\nexcept ImportError:\n    import tf_keras as keras\n",  # Keras 3 is there: it wins
    "if True:\n    from keras import ops\n",
])
def test_the_standalone_keras_package_is_keras_3(source):
    assert len(imports_in(source)) == 1, source


@pytest.mark.parametrize("source", [
    "import tf_keras as keras",
    "import tf_keras",
    "from tf_keras import layers",
    "import tensorflow as tf\nkeras = tf.keras",
    "from tensorflow import keras",
    "import tensorflow.keras",
    "from tensorflow.keras import layers",
    "import keras_tuner",  # another package whose name starts the same
    "from .keras import build",  # the project's own module, relative
    "from . import keras",
    "try:\n    import tf_keras as keras\nexcept ImportError:\n    import keras\n",  # a fallback tf-keras never takes
    "try:\n    import tf_keras as keras\nexcept (ModuleNotFoundError, OSError):\n    from keras import layers\n",
    "text = 'import keras'",
])
def test_tf_keras_and_tf_keras_aliases_are_not(source):
    assert imports_in(source) == [], source


def spec_with(tmp_path, data: dict, files: dict):
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(content))
    return parse_spec(data, base_dir=tmp_path)


@pytest.mark.parametrize("data", [MWMS, PSS], ids=["mwms", "pss"])
def test_a_multi_task_script_importing_keras_3_is_refused_naming_the_line_and_the_fix(tmp_path, data):
    spec = spec_with(tmp_path, data, {"train.py": "import os\nimport tensorflow as tf\nfrom keras import layers\n"})
    with pytest.raises(SpecError) as err:
        check_entrypoint(spec, [str(tmp_path)])
    message = str(err.value)
    assert message == (f"entrypoint.script: {tmp_path / 'train.py'} line 3: `from keras import layers` imports "
                       f"Keras 3 in a {data['strategy']} job. {KERAS3_UNSUPPORTED}")
    assert "import tf_keras as keras" in message
    assert "keras-team/keras#20585" in message and "keras-team/keras#18624" in message


def test_a_single_task_strategy_may_use_keras_3(tmp_path):
    spec = spec_with(tmp_path, MIRRORED, {"train.py": "import keras\n"})
    assert check_entrypoint(spec, [str(tmp_path)]) == []


def test_a_module_entrypoint_is_read_too(tmp_path):
    spec = spec_with(tmp_path, {**MWMS, "entrypoint": {"module": "pkg.train"}},
                     {"pkg/__init__.py": "", "pkg/train.py": "import keras\n"})
    with pytest.raises(SpecError, match=r"^entrypoint.module: .*train.py line 1: `import keras` imports Keras 3"):
        check_entrypoint(spec, [str(tmp_path)])


def test_a_function_entrypoint_is_read_through_its_re_exports_without_running_them(tmp_path):
    marker = tmp_path / "ran"
    spec = spec_with(tmp_path, {**MWMS, "entrypoint": {"function": "pkg:train"}}, {
        "pkg/__init__.py": f"open({str(marker)!r}, 'w').close()\nfrom .impl import train\n",
        "pkg/impl.py": "import keras.layers\n\ndef train(ctx):\n    pass\n",
    })
    with pytest.raises(SpecError, match=r"^entrypoint.function: .*impl.py line 1: `import keras.layers` imports "
                                        r"Keras 3 in a multi_worker_mirrored job"):
        check_entrypoint(spec, [str(tmp_path)])
    assert not marker.exists()


def test_a_tf_keras_script_passes(tmp_path):
    spec = spec_with(tmp_path, MWMS, {"train.py": "import tensorflow as tf\nimport tf_keras as keras\n"})
    assert check_entrypoint(spec, [str(tmp_path)]) == []


def test_a_script_that_does_not_parse_is_said_before_its_imports_are_looked_for(tmp_path):
    spec = spec_with(tmp_path, MWMS, {"train.py": "import keras\ndef f(:\n"})
    with pytest.raises(SpecError, match=r"train.py line 2: .*fix the file"):
        check_entrypoint(spec, [str(tmp_path)])


# -- at run time ------------------------------------------------------------------------------------------------

STAND_IN_KERAS = '''
__version__ = "{version}"

def fit():
    raise ValueError("Attempt to convert a value (PerReplica:{{0: ...}}) with an unsupported type")
'''


@pytest.fixture
def stand_in_keras(tmp_path, monkeypatch):
    """A package named keras, loaded as `keras` at the version asked for: its fit fails as Keras 3's does."""
    def load(version: str):
        folder = tmp_path / f"keras-{version}" / "keras"
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text(STAND_IN_KERAS.format(version=version))
        spec = importlib.util.spec_from_file_location("keras", folder / "__init__.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        monkeypatch.setitem(sys.modules, "keras", module)
        return module
    return load


def raised_by(call) -> BaseException:
    try:
        call()
    except Exception as err:
        return err
    raise AssertionError("it did not raise")


@pytest.mark.parametrize("strategy", ["multi_worker_mirrored", "parameter_server"])
def test_a_failure_inside_keras_3_is_told_in_one_sentence(stand_in_keras, strategy):
    keras = stand_in_keras("3.15.1")
    said = explain(raised_by(keras.fit), strategy)
    assert said == (f"{KERAS3_UNSUPPORTED}. This task's training ({strategy}) failed inside Keras 3 with "
                    "ValueError; the traceback is in its log")
    assert "\n" not in said and "PerReplica" not in said
    assert "import tf_keras as keras" in said[:160]  # what `tfray status` shows of a failure


def test_a_failure_raised_from_one_inside_keras_3_is_too(stand_in_keras):
    keras = stand_in_keras("3.0.0")

    def wrapped():
        try:
            keras.fit()
        except ValueError as err:
            raise RuntimeError("training failed") from err

    assert "training (multi_worker_mirrored) failed inside Keras 3 with RuntimeError" in \
        explain(raised_by(wrapped), "multi_worker_mirrored")


def test_other_failures_keep_their_own_error(stand_in_keras):
    keras = stand_in_keras("3.15.1")
    assert explain(raised_by(keras.fit), "mirrored") is None  # Keras 3 trains under MirroredStrategy
    assert explain(raised_by(keras.fit), None) is None  # no context yet
    assert explain(raised_by(lambda: 1 / 0), "multi_worker_mirrored") is None  # not through Keras


def test_keras_2_is_not_keras_3(stand_in_keras):
    keras = stand_in_keras("2.15.0")
    assert explain(raised_by(keras.fit), "multi_worker_mirrored") is None


def test_the_task_ends_with_the_explanation_and_its_own_exceptions_keep_their_words():
    error = {"type": "ValueError", "message": "PerReplica", "traceback": "Traceback ...", "explanation": "why"}
    assert error_text(error, FailureCause.USER_ERROR) == "why"
    assert error_text({**error, "explanation": None}, FailureCause.USER_ERROR) == \
        "ValueError: PerReplica\nTraceback ..."
    assert error_text({**error, "type": "CheckpointUnreadable"}, FailureCause.CHECKPOINT_UNREADABLE) == \
        "CheckpointUnreadable: PerReplica\nTraceback ..."
    assert error_text(error, FailureCause.STOPPED_ON_NOTICE) == "PerReplica"
