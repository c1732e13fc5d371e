"""Shared test setup: quiet TensorFlow logs and seed every test."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session(free_memory=False)


@pytest.fixture
def cli_error(capsys):
    """Run `sar2opt ARGV`, expect exit status 1, and return the one error line it ends with.

    Progress bars may precede the line; no other line may be an error, and no traceback is printed.
    """
    from keras_sar2opt.cli import main

    def run(argv):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        assert [line for line in lines if "error:" in line] == lines[-1:], lines
        return lines[-1]

    return run
