"""Training and generation under `keras.distribution`, against one device.

Every check runs in a subprocess on JAX with 8 virtual CPU devices
(`tests/distribution/dist_worker.py`): `keras.distribution` is implemented
for JAX only in Keras 3, and `XLA_FLAGS=--xla_force_host_platform_device_count=8`
must be set before JAX is imported, which pytest may already have done. So
on the TensorFlow and PyTorch backends these tests still run, on JAX.

For each task, the worker builds the model on one device (dropout 0, fixed
seed), saves its weights, trains `STEPS` batches of 8 with plain SGD, then
loads the same weights into a model built under `DataParallel` (8 devices)
and under `ModelParallel` (2x4 `("batch", "model")` mesh, the backbone's
layout map) and trains on the same batches. Per-step losses and the final
weights must agree with one device up to float32 reduction order.

The fast suite runs the layout map and the PMLM fits (one subprocess shared
with `test_layout_map.py`); the seq2seq and classifier fits, generation and
the guide are `slow` (run with `-m slow`, JAX job of the CI).
"""

import os
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dist_worker import STEPS  # noqa: E402
from dist_worker import run_cases  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GUIDE = os.path.join(REPO, "guides", "distributed_training.py")
# float32 on CPU; sharded matmuls only change the order of the sums.
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-5
DISTRIBUTIONS = ("data_parallel", "model_parallel")


def _check_fit(result, distribution):
    single = np.array(result["single"])
    got = np.array(result[distribution])
    assert single.shape == got.shape == (STEPS,)
    assert np.all(np.isfinite(single))
    # The model trains: the weights move far more than the tolerance, and
    # the loss changes from step to step.
    assert result["weight_change"] > 100 * WEIGHT_ATOL
    assert np.ptp(single) > 1e-3
    np.testing.assert_allclose(got, single, rtol=LOSS_RTOL)
    assert result[distribution + "_max_weight_diff"] < WEIGHT_ATOL
    # The distribution really applied: replicated for data parallelism,
    # split by hidden columns on the model axis for model parallelism.
    spec = result[distribution + "_token_embedding_spec"]["token_embedding/embeddings"]
    assert spec == ([None, None] if distribution == "data_parallel" else [None, "model"])


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_pmlm_fit_matches_one_device(distribution):
    _check_fit(run_cases("fit:pmlm")["fit:pmlm"], distribution)


@pytest.mark.slow
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_seq2seq_fit_matches_one_device(distribution):
    _check_fit(run_cases("fit:seq2seq")["fit:seq2seq"], distribution)


@pytest.mark.slow
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_classifier_fit_matches_one_device(distribution):
    _check_fit(run_cases("fit:classifier")["fit:classifier"], distribution)


@pytest.mark.slow
def test_greedy_generate_matches_one_device():
    result = run_cases("generate")["generate"]
    single = result["single"]
    ids = np.array(single["ids"])
    assert ids.shape == (8, 7)  # 8 sources, slot 0 + 6 generated tokens
    # Random weights give different outputs per source: a real check.
    assert len({tuple(row) for row in ids.tolist()}) > 4
    for distribution in DISTRIBUTIONS:
        np.testing.assert_array_equal(np.array(result[distribution]["ids"]), ids)
        assert result[distribution]["texts"] == single["texts"]


@pytest.mark.slow
def test_distributed_training_guide_runs():
    env = dict(os.environ, UNILMV2_GUIDE_QUICK="1", TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("KERAS_BACKEND", None)  # the guide picks JAX itself
    env.pop("XLA_FLAGS", None)
    done = subprocess.run(
        [sys.executable, GUIDE],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    out = done.stdout
    assert "8 devices" in out
    assert "data parallel: loss" in out and "model parallel: loss" in out
    # The printed shardings of the model-parallel run.
    lines = {line.split()[0]: line for line in out.splitlines() if "/" in line and "(" in line}
    assert lines["token_embedding/embeddings"].endswith("(None, 'model')")
    assert lines["transformer_layer_0/feedforward_output_dense/kernel"].endswith("('model', None)")
    assert lines["lm_head/output_bias"].endswith("(None,)")
    losses = [float(line.split("loss")[1].split()[0]) for line in out.splitlines() if "parallel: loss" in line]
    # Same seed, same batches: both distributions train alike.
    assert len(losses) == 2 and np.all(np.isfinite(losses))
    assert losses[0] == pytest.approx(losses[1], abs=1e-3)
    assert "guide finished" in out


@pytest.mark.slow
def test_pmlm_fit_under_tf_mirrored_strategy_matches_one_device():
    """The TensorFlow route: `tf.distribute.MirroredStrategy` (2 logical
    CPUs), run on the TensorFlow backend in its own subprocess."""
    result = run_cases("tf_mirrored")["tf_mirrored"]
    assert result["num_replicas"] == 2
    single = np.array(result["single"])
    assert np.ptp(single) > 1e-3
    np.testing.assert_allclose(np.array(result["mirrored"]), single, rtol=LOSS_RTOL)
    assert result["mirrored_max_weight_diff"] < WEIGHT_ATOL
