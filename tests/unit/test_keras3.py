"""Keras 3 in a multi-task job: `validate` refuses it from the entrypoint's source, without running it
(keras-team/keras#20585, #18624)."""

import ast
import textwrap

import pytest

from controller.spec import SpecError, check_entrypoint, find_keras3_imports, parse_spec
from protocol.wire import KERAS3_UNSUPPORTED

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
