"""Shared pytest fixtures.

Nothing here may depend on the Keras backend: every test module must run
unchanged with KERAS_BACKEND=tensorflow, jax or torch.
"""

import os

# Quieter TensorFlow logs; set before anything imports TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pathlib  # noqa: E402

import pytest  # noqa: E402

DATA_DIR = pathlib.Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def fixture_dir():
    """`pathlib.Path` of the reference fixture `tests/data/tiny_uncased`."""
    return DATA_DIR / "tiny_uncased"
