"""Distribution checks on 8 virtual CPU devices, run in a fresh process.

`XLA_FLAGS=--xla_force_host_platform_device_count=8` only takes effect if it
is set before JAX is first imported, and pytest may already have imported
JAX (or run on another backend), so the tests in this folder start this
script with `sys.executable` and read the JSON it prints last:

    KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=8 \
        python tests/distribution/dist_worker.py layout fit:pmlm generate

`keras.distribution` is JAX-only in Keras 3, so this script always runs
on JAX, whatever backend the calling test session uses.

Cases (each prints one entry of the final JSON object, keyed by case name):

- `layout`: every weight path of the PMLM, seq2seq and classifier tasks
  with its sharding spec under `ModelParallel` on a 2x4 `("batch",
  "model")` mesh and the layout rules it matches; a backbone with BERT's
  30522-id vocabulary on 2x4 and 1x8 meshes; the tied LM head (one
  variable with the word embeddings, read by the head under model
  parallelism).
- `fit:<task>` (`pmlm`, `seq2seq`, `classifier`): per-step training losses
  and final weights on one device, with `DataParallel` over 8 devices and
  with `ModelParallel` on the 2x4 mesh, all from the same saved weights.
- `generate`: greedy seq2seq generation on one device, under `DataParallel`
  and under `ModelParallel`.
- `tf_mirrored` (alone, runs on TensorFlow, not JAX): PMLM `fit` under
  `tf.distribute.MirroredStrategy` on 2 logical CPUs against one device,
  the TensorFlow route to data parallelism (see the guide).
"""

import json
import os
import re
import sys
import tempfile
import time

DEVICES = 8
MESH_SHAPE = (2, 4)
BATCH = 8  # divisible by both data-parallel sizes (8 and 2)
STEPS = 3  # training steps per fit (one batch per epoch)
CLS, SEP, MASK = 6, 7, 8  # ids in tests/data/tiny_uncased/vocab.txt
TIED_ID = 17

if __name__ == "__main__":
    # Must happen before JAX is imported (by keras below).
    TENSORFLOW_CASE = sys.argv[1:] == ["tf_mirrored"]
    os.environ["KERAS_BACKEND"] = "tensorflow" if TENSORFLOW_CASE else "jax"
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        flags += f" --xla_force_host_platform_device_count={DEVICES}"
    os.environ["XLA_FLAGS"] = flags.strip()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.dirname(HERE))  # tests/ (unilmv2_test_utils)
    sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # the repo
    if TENSORFLOW_CASE:
        import tensorflow as tf

        # Two logical CPUs for `tf.distribute.MirroredStrategy`.
        tf.config.set_logical_device_configuration(
            tf.config.list_physical_devices("CPU")[0],
            [tf.config.LogicalDeviceConfiguration()] * 2,
        )

import keras  # noqa: E402
import numpy as np  # noqa: E402

PMLM_TEXTS = [
    "the quick fox ran over the lazy dog .",
    "she saw two birds in the park",
    "the cat sat on the mat and the dog ran to the park .",
    "two birds flew over the old house at night",
    "the sun was big and red",
    "he reads a book in the park",
    "a dog and a cat sat on the mat",
    "the old house is big",
]
PAIRS = [
    ("the cat sat on the mat and the dog ran to the park .", "the cat sat ."),
    ("two birds flew over the old house at night", "birds flew over the house"),
    ("he reads a book", "he is reading"),
    ("the sun was big and red", "the sun was big"),
    ("she saw two birds in the park", "she saw birds"),
    ("a dog and a cat sat on the mat", "a dog sat"),
    ("the old house is big", "the house"),
    ("the quick fox ran over the lazy dog .", "the fox ran"),
]


# --- running this script from a test ------------------------------------------

# The cases of the fast test suite run together in one subprocess (one JAX
# start-up and one import of the library for all of them).
FAST_CASES = ("layout", "fit:pmlm")
_RESULTS = {}


def run_cases(*cases, timeout=1200):
    """Runs this script in a subprocess; returns its JSON results by case.

    For the test files: the script runs on JAX with 8 CPU devices
    (`tf_mirrored` alone on TensorFlow), results are cached per process,
    and asking for any of `FAST_CASES` runs all of them at once.
    """
    import subprocess

    wanted = [case for case in cases if case not in _RESULTS]
    if any(case in FAST_CASES for case in wanted):
        wanted = list(dict.fromkeys(wanted + [c for c in FAST_CASES if c not in _RESULTS]))
    groups = [[c] for c in wanted if c == "tf_mirrored"]
    groups.append([c for c in wanted if c != "tf_mirrored"])
    for group in groups:
        if not group:
            continue
        env = dict(os.environ)
        env["XLA_FLAGS"] = (
            env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={DEVICES}"
        ).strip()
        env["TF_CPP_MIN_LOG_LEVEL"] = "3"
        # The script sets KERAS_BACKEND itself (JAX, or TensorFlow for
        # `tf_mirrored`).
        done = subprocess.run(
            [sys.executable, os.path.abspath(__file__), *group],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode or not lines:
            raise AssertionError(
                f"dist_worker.py {' '.join(group)} failed (exit {done.returncode}):\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
            )
        _RESULTS.update(json.loads(lines[-1][len("RESULT ") :]))
    return {case: _RESULTS[case] for case in cases}


# --- helpers -----------------------------------------------------------------


def _tokenizer():
    from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
    from unilmv2_test_utils import fixture_path

    return UniLMv2Tokenizer(vocabulary=fixture_path("vocab.txt"))


def _numpy(structure):
    return keras.tree.map_structure(lambda t: np.asarray(keras.ops.convert_to_numpy(t)), structure)


def _mesh():
    devices = keras.distribution.list_devices()
    if len(devices) != DEVICES:
        raise RuntimeError(f"Expected {DEVICES} devices, found {devices}; XLA_FLAGS not applied?")
    return keras.distribution.DeviceMesh(MESH_SHAPE, ["batch", "model"], devices)


def _distributions():
    from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone

    devices = keras.distribution.list_devices()
    layout_map = UniLMv2Backbone.get_layout_map(_mesh())
    return {
        "data_parallel": keras.distribution.DataParallel(devices=devices),
        "model_parallel": keras.distribution.ModelParallel(
            layout_map=layout_map, batch_dim_name="batch"
        ),
    }


def _spec(variable):
    """The `PartitionSpec` of a variable's value as a list (None = replicated)."""
    sharding = variable.value.sharding
    spec = getattr(sharding, "spec", None)
    if spec is None:  # a single-device sharding
        return None
    spec = list(spec) + [None] * (len(variable.shape) - len(spec))
    return [None if axis is None else str(axis) for axis in spec]


def _pmlm_data(seed=0):
    """A PMLM batch built with `masks.pmlm_layout` (keras ops, no tf.data).

    Real lengths 10..16 of N = 16 context slots, 2..4 masked tokens of
    K = 4 (the rest padding entries), blocks of 1-2 tokens in a random
    factorization order; the same layout the preprocessor builds.
    """
    from keras_unilmv2.masks import pmlm_layout
    from keras_unilmv2.masks import pmlm_model_inputs

    rng = np.random.default_rng(seed)
    n, k = 16, 4
    context = np.zeros((BATCH, n), "int32")
    valid = np.zeros((BATCH, n), bool)
    positions = np.zeros((BATCH, k), "int32")
    steps = np.zeros((BATCH, k), "int32")
    originals = np.zeros((BATCH, k), "int32")
    for b in range(BATCH):
        length = int(rng.integers(10, n + 1))
        text = rng.integers(10, 120, length).astype("int32")
        text[0], text[-1] = CLS, SEP
        count = int(rng.integers(2, k + 1))
        chosen = np.sort(rng.choice(np.arange(1, length - 1), count, replace=False))
        block = np.cumsum(rng.integers(0, 2, count) | (np.arange(count) == 0))
        order = rng.permutation(block.max()) + 1
        positions[b, :count] = chosen
        steps[b, :count] = order[block - 1]
        originals[b, :count] = text[chosen]
        text[chosen] = MASK
        context[b, :length] = text
        valid[b, :length] = True
    layout = pmlm_layout(context, valid, positions, steps, originals, MASK, ops="keras")
    x = pmlm_model_inputs(layout, positions)
    weights = (steps > 0).astype("float32")
    return x, {"ae": originals, "par": originals}, {"ae": weights, "par": weights}


def _seq2seq_preprocessor():
    from keras_unilmv2.models.unilmv2_seq2seq_lm_preprocessor import (
        UniLMv2Seq2SeqLMPreprocessor,
    )

    return UniLMv2Seq2SeqLMPreprocessor(
        _tokenizer(), encoder_sequence_length=12, decoder_sequence_length=8, seed=5
    )


def _seq2seq_data():
    preprocessor = _seq2seq_preprocessor()
    sources, targets = zip(*PAIRS)
    x, y, sample_weight = _numpy(
        preprocessor({"encoder_text": list(sources), "decoder_text": list(targets)})
    )
    x = {k: v.astype("int32") for k, v in x.items()}
    return x, y, sample_weight


def _classifier_data():
    from unilmv2_test_utils import random_inputs

    x = random_inputs(batch=BATCH, length=10, seed=4, pad=3)
    y = np.arange(BATCH, dtype="int32") % 3
    return x, y, None


def _build(task, dropout=0.0):
    """A task on a tiny backbone (seed 0, no preprocessor), compiled with SGD."""
    from unilmv2_test_utils import tiny_backbone

    keras.utils.set_random_seed(0)
    backbone = tiny_backbone(dropout=dropout)
    if task == "pmlm":
        from keras_unilmv2.models.unilmv2_pmlm import UniLMv2PMLM

        model = UniLMv2PMLM(backbone)
        model.compile(optimizer=keras.optimizers.SGD(0.1), weighted_metrics=[])
    elif task == "seq2seq":
        from keras_unilmv2.models.unilmv2_seq2seq_lm import UniLMv2Seq2SeqLM

        model = UniLMv2Seq2SeqLM(backbone)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
    elif task == "classifier":
        from keras_unilmv2.models.unilmv2_text_classifier import UniLMv2TextClassifier

        model = UniLMv2TextClassifier(backbone, num_classes=3, dropout=0.0)
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[],
        )
    else:
        raise ValueError(f"Unknown task {task!r}; use 'pmlm', 'seq2seq' or 'classifier'.")
    return model


DATA = {"pmlm": _pmlm_data, "seq2seq": _seq2seq_data, "classifier": _classifier_data}


def _fit(model, data):
    x, y, sample_weight = data
    history = model.fit(
        x,
        y,
        sample_weight=sample_weight,
        batch_size=BATCH,
        epochs=STEPS,
        shuffle=False,
        verbose=0,
    )
    return [float(v) for v in history.history["loss"]]


def _weights(model):
    return {w.path: np.asarray(keras.ops.convert_to_numpy(w)) for w in model.weights}


def _max_diff(a, b):
    assert set(a) == set(b), (sorted(set(a) ^ set(b)))
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


# --- cases -------------------------------------------------------------------


def case_layout(tmp):
    from keras_unilmv2.models.unilmv2_backbone import LAYOUT_RULES

    distribution = _distributions()["model_parallel"]
    result = {"rules": [pattern for pattern, _ in LAYOUT_RULES], "tasks": {}}
    tasks = ["pmlm", "seq2seq", "classifier"]
    for task in tasks:
        with distribution.scope():
            model = _build(task)
        rows = {}
        for w in model.weights:
            rows[w.path] = {
                "shape": list(w.shape),
                "spec": _spec(w),
                "rules": [i for i, (p, _) in enumerate(LAYOUT_RULES) if re.fullmatch(p, w.path)],
            }
        result["tasks"][task] = {
            "weights": rows,
            "num_weights": len(model.weights),
            "num_unique_weights": len({id(w) for w in model.weights}),
        }

    # The released vocabularies (30522 ids) are not divisible by 4 or 8;
    # the layout map must still build on a 2x4 and on a 1x8 mesh.
    from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
    from unilmv2_test_utils import tiny_backbone

    devices = keras.distribution.list_devices()
    result["vocabulary_30522"] = {}
    for shape in ((2, 4), (1, 8)):
        mesh = keras.distribution.DeviceMesh(shape, ["batch", "model"], devices)
        wide = keras.distribution.ModelParallel(
            layout_map=UniLMv2Backbone.get_layout_map(mesh), batch_dim_name="batch"
        )
        name = "x".join(map(str, shape))
        try:
            with wide.scope():
                backbone = tiny_backbone(vocabulary_size=30522)
            result["vocabulary_30522"][name] = {
                w.path: _spec(w) for w in backbone.weights if w.path.endswith("embedding/embeddings")
            }
        except Exception as e:  # reported, the test fails on it
            result["vocabulary_30522"][name] = f"{type(e).__name__}: {e}"[:500]

    # The tied LM head: one variable, sharded like the input embedding, that
    # the head reads. Zeroing the embedding row of one id must leave exactly the
    # output bias as that id's logit everywhere (under model parallelism).
    x, _, _ = _pmlm_data()
    with distribution.scope():
        model = _build("pmlm")
        backbone = model.backbone
        head_table = backbone.lm_head.token_embedding.embeddings
        table = np.asarray(keras.ops.convert_to_numpy(head_table)).copy()
        table[TIED_ID] = 0.0
        head_table.assign(table)
        bias = np.zeros(tuple(backbone.lm_head.output_bias.shape), "float32")
        bias[TIED_ID] = 3.25
        backbone.lm_head.output_bias.assign(bias)
        logits = _numpy(model.predict(x, batch_size=BATCH, verbose=0))
    result["tied"] = {
        "same_variable": head_table is backbone.token_embedding.embeddings,
        "num_embedding_tables": sum(
            1 for w in model.weights if w.path.endswith("token_embedding/embeddings")
        ),
        "spec": _spec(head_table),
        "specs_after_assign": {w.path: _spec(w) for w in model.weights},
        "row_logits": {
            k: [float(v[..., TIED_ID].min()), float(v[..., TIED_ID].max())]
            for k, v in logits.items()
        },
        "other_logits_max_abs": {
            k: float(np.abs(np.delete(v, TIED_ID, axis=-1)).max()) for k, v in logits.items()
        },
    }
    return result


def case_fit(tmp, task):
    data = DATA[task]()
    single = _build(task)
    path = os.path.join(tmp, f"{task}.weights.h5")
    single.save_weights(path)
    initial = _weights(single)
    result = {"single": _fit(single, data)}
    trained = _weights(single)
    result["weight_change"] = _max_diff(trained, initial)
    for name, distribution in _distributions().items():
        with distribution.scope():
            model = _build(task)
            model.load_weights(path)
            result[name] = _fit(model, data)
            result[name + "_max_weight_diff"] = _max_diff(_weights(model), trained)
            specs = {
                str(w.path): _spec(w)
                for w in model.weights
                if "token_embedding" in w.path
            }
        result[name + "_token_embedding_spec"] = specs
    return result


def _randomize(model, seed=3, scale=0.2):
    """Weights large enough that greedy choices are not near-ties."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        value = rng.normal(0.0, scale, tuple(weight.shape))
        if "gamma" in weight.path:
            value += 1.0
        weight.assign(value.astype("float32"))


def case_generate(tmp):
    from keras_unilmv2.models.unilmv2_seq2seq_lm import UniLMv2Seq2SeqLM
    from unilmv2_test_utils import tiny_backbone

    sources = [source for source, _ in PAIRS]
    path = os.path.join(tmp, "generate.weights.h5")

    def build():
        task = UniLMv2Seq2SeqLM(tiny_backbone(dropout=0.0), preprocessor=_seq2seq_preprocessor())
        task.compile(sampler="greedy")
        return task

    def run(task):
        inputs = task.preprocessor.generate_preprocess(sources, sequence_length=6)
        outputs = task.make_generate_function()(_numpy(inputs), stop_token_ids=None)
        return {
            "ids": _numpy(outputs["decoder_token_ids"]).tolist(),
            "texts": task.generate(sources, max_length=6),
        }

    single = build()
    _randomize(single)
    single.save_weights(path)
    result = {"single": run(single)}
    for name, distribution in _distributions().items():
        with distribution.scope():
            task = build()
            task.load_weights(path)
            result[name] = run(task)
    return result


def case_tf_mirrored(tmp):
    import tensorflow as tf

    data = _pmlm_data()
    single = _build("pmlm")
    path = os.path.join(tmp, "mirrored.weights.h5")
    single.save_weights(path)
    result = {"single": _fit(single, data)}
    trained = _weights(single)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = _build("pmlm")
        model.load_weights(path)
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(BATCH)
    history = model.fit(dataset, epochs=STEPS, verbose=0)
    result["mirrored"] = [float(v) for v in history.history["loss"]]
    result["mirrored_max_weight_diff"] = _max_diff(_weights(model), trained)
    result["num_replicas"] = strategy.num_replicas_in_sync
    return result


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    if "tf_mirrored" in argv and len(argv) > 1:
        raise ValueError("`tf_mirrored` runs on TensorFlow: pass it alone.")
    results = {}
    if keras.config.backend() == "jax":
        results["devices"] = [str(d) for d in keras.distribution.list_devices()]
    with tempfile.TemporaryDirectory() as tmp:
        for case in argv:
            start = time.perf_counter()
            name, _, arg = case.partition(":")
            if name == "layout":
                results[case] = case_layout(tmp)
            elif name == "fit":
                results[case] = case_fit(tmp, arg)
            elif name == "generate":
                results[case] = case_generate(tmp)
            elif name == "tf_mirrored":
                results[case] = case_tf_mirrored(tmp)
            else:
                raise ValueError(f"Unknown case {case!r}; see the module docstring.")
            results[case]["seconds"] = round(time.perf_counter() - start, 2)
    print("RESULT " + json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
