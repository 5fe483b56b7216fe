"""The digits example reads sklearn's shipped file itself (examples/digits.py, ``digits_table``): the numbers
must be exactly what ``sklearn.datasets.load_digits`` gives, and the training process must not import sklearn."""

import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def test_the_file_read_directly_is_what_load_digits_returns():
    from sklearn.datasets import load_digits

    from examples.digits import digits_table

    digits = load_digits()
    pixels, labels = digits_table()
    assert pixels.dtype == digits.data.dtype and np.array_equal(pixels, digits.data)
    assert labels.dtype == digits.target.dtype and np.array_equal(labels, digits.target)


def test_loading_the_data_does_not_import_sklearn():
    code = "import sys; from examples.digits import load_data; load_data(); print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-2000:]
