"""Helpers shared by the test files (importable because pytest puts `tests/`
on `sys.path` through `tests/conftest.py`)."""

import functools
import os

import keras
import numpy as np

FIXTURE_DIR = os.path.join(os.path.dirname(__file__), "data", "tiny_uncased")


def fixture_path(name):
    return os.path.join(FIXTURE_DIR, name)


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def tiny_backbone_kwargs(**overrides):
    kwargs = dict(
        vocabulary_size=120,
        num_layers=2,
        num_heads=4,
        hidden_dim=32,
        intermediate_dim=64,
        max_sequence_length=64,
    )
    kwargs.update(overrides)
    return kwargs


def tiny_backbone(**overrides):
    from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone

    return UniLMv2Backbone(**tiny_backbone_kwargs(**overrides))


def random_inputs(batch=2, length=9, vocabulary_size=120, seed=0, pad=2):
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(10, vocabulary_size, (batch, length)).astype("int32")
    padding_mask = np.ones((batch, length), "int32")
    if pad:
        padding_mask[-1, -pad:] = 0
        token_ids[-1, -pad:] = 0
    return {
        "token_ids": token_ids,
        "segment_ids": np.zeros((batch, length), "int32"),
        "padding_mask": padding_mask,
    }


@functools.lru_cache(maxsize=None)
def reference_backbone(layer_norm_epsilon=None):
    """The fixture's raw checkpoint converted into a `UniLMv2Backbone`."""
    from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
    from keras_unilmv2 import conversion as checkpoint_conversion

    kwargs = checkpoint_conversion.backbone_kwargs_from_config(
        fixture_path("config.json")
    )
    if layer_norm_epsilon is not None:
        kwargs["layer_norm_epsilon"] = layer_norm_epsilon
    backbone = UniLMv2Backbone(**kwargs)
    checkpoint_conversion.convert_state_dict(
        checkpoint_conversion.load_state_dict(fixture_path("model.bin")), backbone
    )
    return backbone


def reference_inputs(data, prefix=""):
    """Backbone inputs from a fixture group (`input_ids`, ... arrays)."""
    from keras_unilmv2.conversion import reference_inputs as build

    return build(data, prefix)
