"""Multi-process pre-training (`tools/pretrain_pmlm.py --num-processes 2`).

Two processes on 127.0.0.1 (a free port; JAX's gloo collectives on CPU)
train the tiny model data-parallel, each reading half of every global
batch; their per-step losses, held-out figures and final weights must
equal one process training on the same global batches. The two-process
run is interrupted after 2 of its 4 steps and resumed by a second
two-process launch, so the comparison also covers the resume (every
process restores the chief's checkpoint).

Tolerances: float32 on CPU. The two runs compute the same sums, but the
loss and gradient means over the global batch are reduced across
processes (an all-reduce of two partial sums) instead of in one pass, so
they can differ in the last bits (~1e-7 relative per step); over 4 AdamW
steps that stays far below `LOSS_RTOL`/`WEIGHT_ATOL` = 1e-5, the same as
`test_distributed_training.py`'s single-process mesh checks.

The subprocesses run on the backend each test names (JAX; PyTorch with
`torch.distributed` gloo; TensorFlow with `MultiWorkerMirroredStrategy`),
whatever backend this test session uses. Each launch starts Python,
TensorFlow and the backend in fresh processes, so the end-to-end tests
are `slow` (minutes on a loaded 2-core machine); the option checks are
fast. The PyTorch and TensorFlow runs use `--dropout 0`: their processes
draw their dropout masks apart (as under `DistributedDataParallel`), JAX
draws them over the global batch.

`test_torch_ddp_two_ranks_match_one` (slow, ~2 min) also trains the
Keras PMLM in a plain torch loop under `DistributedDataParallel` with 2
gloo ranks against 1 (`ddp_worker.py`), and
`test_tf_multi_worker_custom_step_two_workers_match_one` (slow) with a
custom step under `MultiWorkerMirroredStrategy`, 2 workers against 1
(`mwms_worker.py`).
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "tools", "pretrain_pmlm.py")
VOCAB = os.path.join(REPO, "tests", "data", "tiny_uncased", "vocab.txt")
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-5
WORDS = (
    "the quick fox ran over lazy dog she saw two birds in park cat sat on mat and "
    "house at night reads a book every day they swim river old big red sun"
).split()
ARGS = [
    "--vocab", VOCAB, "--num-layers", "1", "--num-heads", "2", "--hidden-dim", "16",
    "--intermediate-dim", "32", "--max-sequence-length", "64", "--sequence-length", "16",
    "--batch-size", "4", "--steps", "4", "--warmup-steps", "1", "--learning-rate", "1e-2",
    "--checkpoint-every", "1", "--heldout-every", "5", "--seed", "3",
]


def _free_port(count=1):
    """A free port `P` (with `P + 1 .. P + count - 1` free too: TensorFlow's
    workers listen at the coordinator's port and the next ones)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            for other in range(port + 1, port + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", other))
        except OSError:
            continue
        return port


def _env(backend="jax"):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    env.pop("TF_CONFIG", None)  # TensorFlow's workers: from the flags
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _launch(output, processes, extra=(), timeout=900, backend="jax"):
    """Runs the tool in `processes` processes; returns their outputs."""
    common = [sys.executable, TOOL, "--output", output, *ARGS, *extra]
    if processes > 1:
        address = f"127.0.0.1:{_free_port(processes)}"
        commands = [
            common + ["--coordinator-address", address, "--num-processes", str(processes),
                      "--process-id", str(i)]
            for i in range(processes)
        ]
    else:
        commands = [common]
    running = [
        subprocess.Popen(c, cwd=REPO, env=_env(backend), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for c in commands
    ]
    outputs = []
    try:
        for process in running:
            out, _ = process.communicate(timeout=timeout)
            outputs.append(out)
            assert process.returncode == 0, out[-5000:]
    finally:
        for process in running:
            if process.poll() is None:
                process.kill()
    return outputs


def _history(output):
    with open(os.path.join(output, "training", "history.csv")) as f:
        rows = [line.strip().split(",") for line in f if line.strip()]
    header = rows[0]
    return {key: np.array([float(r[i]) for r in rows[1:]]) for i, key in enumerate(header)}


def _weights(path):
    import h5py

    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, item: found.__setitem__(name, np.array(item))
            if isinstance(item, h5py.Dataset) else None
        )
    return found


@pytest.fixture
def corpus(tmp_path):
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(WORDS, rng.integers(5, 15))) for _ in range(60)]
    path = os.path.join(tmp_path, "corpus.txt")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_two_processes_match_one_and_resume(corpus, tmp_path):
    _check_two_processes_match_one(corpus, tmp_path, "jax", [])


@pytest.mark.slow
def test_two_torch_processes_match_one_and_resume(corpus, tmp_path):
    """PyTorch (`torch.distributed`, gloo): the same check, dropout off."""
    _check_two_processes_match_one(corpus, tmp_path, "torch", ["--dropout", "0"])


@pytest.mark.slow
def test_two_tensorflow_processes_match_one_and_resume(corpus, tmp_path):
    """TensorFlow (`MultiWorkerMirroredStrategy` under Keras' `fit`, workers
    at the coordinator's port and the next): the same check, dropout off."""
    _check_two_processes_match_one(corpus, tmp_path, "tensorflow", ["--dropout", "0"])


def _check_two_processes_match_one(corpus, tmp_path, backend, extra):
    one = os.path.join(tmp_path, "one")
    two = os.path.join(tmp_path, "two")
    _launch(one, 1, ["--input", corpus, *extra], backend=backend)
    # Interrupted after 2 of 4 steps, then resumed: two launches of 2 processes.
    first = _launch(two, 2, ["--input", corpus, "--stop-after-checkpoints", "2", *extra],
                    backend=backend)
    assert "stopped before the last step" in first[0]
    assert "stopped before the last step" not in first[1]  # process 1 is quiet
    assert not os.path.exists(os.path.join(two, "model.weights.h5"))
    resumed = _launch(two, 2, ["--input", corpus, *extra], backend=backend)
    assert "resuming after step 2" in resumed[0]

    single, double = _history(one), _history(two)
    np.testing.assert_array_equal(double["step"], [1, 2, 3, 4])
    assert np.ptp(single["loss"]) > 1e-2  # the model trains: a real comparison
    for key in ("loss", "ae_loss", "par_loss"):
        np.testing.assert_allclose(double[key], single[key], rtol=LOSS_RTOL)

    w1 = _weights(os.path.join(one, "model.weights.h5"))
    w2 = _weights(os.path.join(two, "model.weights.h5"))
    assert sorted(w1) == sorted(w2) and len(w1) > 5
    for name in w1:
        np.testing.assert_allclose(w2[name], w1[name], atol=WEIGHT_ATOL, err_msg=name)

    with open(os.path.join(one, "metadata.json")) as f:
        m1 = json.load(f)
    with open(os.path.join(two, "metadata.json")) as f:
        m2 = json.load(f)
    # 12 held-out documents in batches of 4: no partial batch, same figures.
    for stage in ("untrained", "trained"):
        for key, value in m1["heldout"][stage].items():
            assert m2["heldout"][stage][key] == pytest.approx(value, abs=2e-4), (stage, key)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"num_processes": 2}, "coordinator_address"),
        ({"num_processes": 2, "coordinator_address": "localhost"}, "HOST:PORT"),
        ({"coordinator_address": "127.0.0.1:1234"}, "num_processes"),
        ({"num_processes": 0}, "num_processes"),
        ({"num_processes": 2, "process_id": 2, "coordinator_address": "h:1"}, "process_id"),
        ({"process_id": -1}, "process_id"),
    ],
)
def test_bad_process_options_are_refused(options, message):
    from keras_unilmv2.pretraining.distributed import check_process_options

    kwargs = dict({"coordinator_address": None, "num_processes": 1, "process_id": 0}, **options)
    with pytest.raises(ValueError, match=message):
        check_process_options(**kwargs)


def test_batch_must_split_evenly_over_processes():
    from keras_unilmv2.pretraining import PretrainSettings

    with pytest.raises(ValueError, match="batch_size.*divisible by `num_processes`"):
        PretrainSettings(["c"], "out", batch_size=5, num_processes=2,
                         coordinator_address="127.0.0.1:1234")
    settings = PretrainSettings(["c"], "out", batch_size=4, num_processes=2,
                                coordinator_address="127.0.0.1:1234", process_id=1)
    assert settings.data_parallel  # several processes: data parallel by default


def test_too_few_heldout_documents_for_a_global_batch_are_refused(corpus, tmp_path,
                                                                   monkeypatch):
    """Several processes evaluate full global batches only: fewer held-out
    documents than one batch is a clear error (not an empty evaluation).
    The processes are faked (the check comes before any collective)."""
    from keras_unilmv2.pretraining import distributed
    from keras_unilmv2.pretraining import pretrain

    monkeypatch.setitem(distributed._STATE, "num_processes", 1)
    monkeypatch.setitem(distributed._STATE, "process_id", 0)
    monkeypatch.setattr(
        distributed, "initialize_processes",
        lambda address, count, index: distributed._STATE.update(
            num_processes=count, process_id=index),
    )
    options = dict(vocabulary=VOCAB, num_layers=1, num_heads=2, hidden_dim=16,
                   intermediate_dim=32, max_sequence_length=64, sequence_length=16,
                   steps=1, checkpoint_every=1, coordinator_address="127.0.0.1:1",
                   num_processes=2, log=lambda *a: None)
    # 60 documents, every 5th held out: 12.
    with pytest.raises(ValueError, match="--batch-size 16.*only 12 held-out documents"):
        pretrain([corpus], os.path.join(tmp_path, "out"), batch_size=16, heldout_every=5,
                 **options)


def test_shard_batches_gives_each_process_its_rows(monkeypatch):
    import tensorflow as tf

    from keras_unilmv2.pretraining import distributed

    data = tf.data.Dataset.range(12).batch(4)
    monkeypatch.setitem(distributed._STATE, "num_processes", 2)
    shares = []
    for index in (0, 1):
        monkeypatch.setitem(distributed._STATE, "process_id", index)
        shard = distributed.shard_batches(data, 4)
        assert int(shard.cardinality()) == 3
        shares.append([b.numpy().tolist() for b in shard])
    assert shares[0] == [[0, 1], [4, 5], [8, 9]]
    assert shares[1] == [[2, 3], [6, 7], [10, 11]]
    monkeypatch.setitem(distributed._STATE, "num_processes", 1)
    assert distributed.shard_batches(data, 4) is data


def test_tf_config_is_written_from_the_flags_on_one_host():
    from keras_unilmv2.pretraining.distributed import tf_config

    config = tf_config("127.0.0.1:1234", 3, 2, environ={})
    assert config == {
        "cluster": {"worker": ["127.0.0.1:1234", "127.0.0.1:1235", "127.0.0.1:1236"]},
        "task": {"type": "worker", "index": 2},
    }
    with pytest.raises(ValueError, match="ports 65535..65536, beyond 65535"):
        tf_config("h:65535", 2, 0, environ={})


def test_tf_config_set_by_the_user_must_agree_with_the_flags():
    from keras_unilmv2.pretraining.distributed import tf_config

    config = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}
    environ = {"TF_CONFIG": json.dumps(config)}
    assert tf_config("ignored:1", 2, 1, environ=environ) == config  # across machines
    with pytest.raises(
        ValueError,
        match=r"TF_CONFIG disagrees with the flags: it lists 2 workers and makes this "
        r"process worker 1, but `num_processes` \(--num-processes\) is 3 and "
        r"`process_id` \(--process-id\) is 1",
    ):
        tf_config("h:1", 3, 1, environ=environ)
    with pytest.raises(ValueError, match="worker 1, but .* is 2 and `process_id` .* is 0"):
        tf_config("h:1", 2, 0, environ=environ)
    chief = dict(config, cluster={"chief": ["c:1"], "worker": ["a:1"]})
    with pytest.raises(ValueError, match=r"workers only .* task types \['chief'\]"):
        tf_config("h:1", 2, 1, environ={"TF_CONFIG": json.dumps(chief)})
    with pytest.raises(ValueError, match="TF_CONFIG must be JSON like"):
        tf_config("h:1", 2, 1, environ={"TF_CONFIG": "{not json"})


def test_several_tensorflow_processes_check_tf_config_before_starting(monkeypatch):
    """`initialize_processes` on TensorFlow checks `TF_CONFIG` against the
    flags before creating the strategy (whatever backend this session
    runs: the check reads the backend name)."""
    import keras

    from keras_unilmv2.pretraining import distributed

    monkeypatch.setattr(keras.backend, "backend", lambda: "tensorflow")
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}))
    with pytest.raises(ValueError, match="TF_CONFIG disagrees with the flags"):
        distributed.initialize_processes("127.0.0.1:1234", 2, 1)
    assert (distributed.process_count(), distributed.process_index()) == (1, 0)
    assert distributed._STATE["strategy"] is None
    assert distributed.is_chief()


def test_gradient_accumulation_is_refused_with_several_tensorflow_processes(monkeypatch):
    """Keras 3.15's TensorFlow optimizer accumulates in a `cond` that syncs
    the workers, which `MultiWorkerMirroredStrategy` refuses: a clear error
    up front (whatever backend this session runs: the check reads its name)."""
    import keras

    from keras_unilmv2.pretraining import PretrainSettings

    options = dict(batch_size=4, num_processes=2, coordinator_address="127.0.0.1:1234")
    monkeypatch.setattr(keras.backend, "backend", lambda: "tensorflow")
    with pytest.raises(ValueError, match="gradient_accumulation_steps.*several TensorFlow "
                       "processes.*gradient_accumulation_steps=2, num_processes=2"):
        PretrainSettings(["c"], "out", gradient_accumulation_steps=2, **options)
    assert PretrainSettings(["c"], "out", **options).gradient_accumulation_steps == 1
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    assert PretrainSettings(["c"], "out", gradient_accumulation_steps=2,
                            **options).gradient_accumulation_steps == 2


def test_model_parallel_is_refused_on_data_parallel_backends(monkeypatch):
    import keras

    from keras_unilmv2.pretraining import distributed

    monkeypatch.setitem(distributed._STATE, "num_processes", 2)
    monkeypatch.setitem(distributed._STATE, "strategy", object())  # as on TensorFlow
    monkeypatch.setattr(keras.backend, "backend", lambda: "tensorflow")
    with pytest.raises(ValueError, match="`model_parallel` \\(--mesh 1x2\\) runs on JAX"):
        distributed.make_distribution(keras, "1x2")
    assert distributed.make_distribution(keras, None) is None


def _run_ddp(world, out, timeout=600, worker="ddp_worker.py", backend="torch"):
    worker = os.path.join(REPO, "tests", "distribution", worker)
    port = str(_free_port())
    env = _env(backend)
    running = [
        subprocess.Popen([sys.executable, worker, str(rank), str(world), port, out], cwd=REPO,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in range(world)
    ]
    try:
        for rank, process in enumerate(running):
            try:
                text, _ = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                text, _ = process.communicate()
                pytest.fail(f"rank {rank} of {world} ran past {timeout} s:\n{text[-5000:]}")
            assert process.returncode == 0, text[-5000:]
    finally:
        for process in running:
            if process.poll() is None:
                process.kill()
    with open(out) as f:
        return json.load(f)


@pytest.mark.slow
def test_torch_ddp_two_ranks_match_one(tmp_path):
    """PyTorch: the Keras PMLM in `DistributedDataParallel` (gloo), 2 ranks
    of 4 rows against 1 rank of 8 (`ddp_worker.py`); runs on the PyTorch
    backend in its subprocesses whatever this session's backend. Same
    float32 tolerances as above (the gradients are averaged by an
    all-reduce instead of summed in one pass)."""
    one = _run_ddp(1, os.path.join(tmp_path, "one.json"))
    two = _run_ddp(2, os.path.join(tmp_path, "two.json"))
    assert np.ptp(one["losses"]) > 1e-2  # the model trains
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=LOSS_RTOL)
    assert sorted(one["weights"]) == sorted(two["weights"])
    for name, value in one["weights"].items():
        np.testing.assert_allclose(np.array(two["weights"][name]), np.array(value),
                                   atol=WEIGHT_ATOL, err_msg=name)
    assert len(one["weights"]) > 5


@pytest.mark.slow
def test_tf_multi_worker_custom_step_two_workers_match_one(tmp_path):
    """TensorFlow: the Keras PMLM trained by a custom step under
    `MultiWorkerMirroredStrategy` (`TF_CONFIG`, 2 workers on 127.0.0.1)
    against 1 worker (`mwms_worker.py`); runs on TensorFlow in its
    subprocesses whatever this session's backend. Same float32 tolerances.
    The workers take ports `PORT` and `PORT + 1` (`PORT` found free)."""

    def run(world, name):
        return _run_ddp(world, os.path.join(tmp_path, name), worker="mwms_worker.py",
                        backend="tensorflow")

    one = run(1, "one.json")
    two = run(2, "two.json")
    assert np.ptp(one["losses"]) > 1e-2  # the model trains
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=LOSS_RTOL)
    assert sorted(one["weights"]) == sorted(two["weights"]) and len(one["weights"]) > 5
    for name, value in one["weights"].items():
        np.testing.assert_allclose(np.array(two["weights"][name]), np.array(value),
                                   atol=WEIGHT_ATOL, err_msg=name)
