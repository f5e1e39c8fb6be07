"""Shared test fixtures: the repository on sys.path and a small toy data set built once per session."""

import contextlib
import io
import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


@pytest.fixture(scope="session")
def save_checkpoint():
    """A function that writes a model to a checkpoint in train.py's format (no optimizer state), as
    eval.py, detect.py, export.py, hubconf.py and load_model_from_checkpoint read it.

    :return: ``save(path, network, label_map, iteration=0) -> str(path)``
    """
    import torch

    from ssd_support.checkpoints import network_config

    def save(path, network, label_map, iteration=0):
        torch.save({"model": network.state_dict(), "config": network_config(network, label_map),
                    "iteration": iteration}, path)
        return str(path)

    return save


@pytest.fixture(scope="session")
def toy_data_folder(tmp_path_factory):
    """A data folder with the lists of a small toy data set (8 train / 4 test images, seed 0).

    Circles, squares and triangles (labels 1, 2, 3); the VOC-format tree is in <folder>/ToyVOC.
    Tests must treat it as read-only: it is shared by the whole session.

    :return: the folder's path, a str
    """
    from create_data_lists import create_data_lists
    from ssd_support.toy_data import make_toy_dataset

    folder = str(tmp_path_factory.mktemp("toy_data"))
    voc_folder = make_toy_dataset(folder, n_train=8, n_test=4, seed=0)
    with contextlib.redirect_stdout(io.StringIO()):
        create_data_lists(voc07_path=voc_folder, output_folder=folder)
    return folder


@pytest.fixture
def time_limit():
    """A context manager that ends its block with TimeoutError after ``seconds`` (SIGALRM: it interrupts a blocking
    open() of a FIFO, so that a regression that waits for a writer fails the test instead of hanging the suite).

    :return: ``time_limit(seconds)``, used as ``with time_limit(10): ...``; POSIX only
    """
    import signal

    @contextlib.contextmanager
    def limit(seconds):
        def expire(signum, frame):
            raise TimeoutError(f"still running after {seconds} s (waiting on a FIFO?)")

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    return limit
