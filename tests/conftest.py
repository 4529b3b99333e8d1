"""Shared fixtures: small real data and the paths of the project."""

import os

import numpy as np
import pytest

from ladder_vae import data as data_lib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def bundled_digits():
    """The 3,000 training and 1,000 test digits shipped with the package, uint8 [n, 28, 28, 1]."""
    return data_lib.load_idx_dir(data_lib.BUNDLED_MNIST_DIR)


@pytest.fixture(scope="session")
def digit_batch(bundled_digits):
    """64 real digits as float32 in [0, 1]."""
    return bundled_digits.train_images[:64].astype(np.float32) / 255.0


@pytest.fixture(scope="session")
def explorer_run(tmp_path_factory):
    """A run directory with an exported, briefly trained model of levels (2, 2, 3) and the
    record of its data, shared by the explorer's tests (see tests/explorer_run.py)."""
    from tests.explorer_run import make_run

    return make_run(tmp_path_factory.mktemp("explorer") / "run")
