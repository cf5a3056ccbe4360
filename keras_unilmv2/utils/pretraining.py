"""PMLM pre-training from plain text: data, training loop, preset export.

`tools/pretrain_pmlm.py` is the command line over `pretrain()`.
"""

import csv
import json
import math
import os
import sys

from keras_unilmv2.utils.corpus import rst_paragraphs

TEXT_SUFFIXES = (".txt", ".text")


def read_texts(paths, min_words=4, max_non_text=0.05):
    """Documents from files and folders, in a deterministic order.

    A `.rst.txt` file yields its prose paragraphs (see
    `keras_unilmv2.utils.corpus.rst_paragraphs`); any other text file one
    document per non-empty line. Folders are searched recursively for
    `*.txt` files, in sorted order.

    Files are read as UTF-8. A corpus that is mostly not text is refused
    with a `ValueError`: when more than `max_non_text` (default 5%) of its
    non-space characters are undecodable bytes or control characters (a
    binary file or another encoding), rather than training on noise.
    """
    files = []
    for path in paths:
        path = os.path.expanduser(os.fspath(path))
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                files += [
                    os.path.join(root, n) for n in sorted(names) if n.endswith(TEXT_SUFFIXES)
                ]
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise ValueError(f"`--input` path does not exist: {path!r}")
    if not files:
        raise ValueError(f"No text files found in {list(paths)!r}.")
    texts = []
    non_text, total, worst = 0, 0, (0.0, None)
    for name in files:
        with open(name, "rb") as f:
            raw = f.read()
        content = raw.decode("utf-8", errors="replace")
        bad = _count_non_text(content, raw)
        size = sum(1 for char in content if not char.isspace())
        non_text, total = non_text + bad, total + size
        if size and bad / size > worst[0]:
            worst = (bad / size, name)
        if name.endswith(".rst.txt"):
            texts += rst_paragraphs(content, min_words=min_words)
        else:
            texts += [
                line.strip()
                for line in content.splitlines()
                if len(line.split()) >= min_words
            ]
    if total and non_text / total > max_non_text:
        raise ValueError(
            "The input does not look like UTF-8 text: "
            f"{non_text / total:.0%} of its {total} non-space characters "
            "are undecodable bytes or control characters (the limit is "
            f"`max_non_text`={max_non_text:.0%}; the worst file is "
            f"{worst[1]!r}, {worst[0]:.0%}). Pass UTF-8 text files. "
            f"Received: paths={list(paths)!r}"
        )
    if not texts:
        raise ValueError(f"The input files hold no document of >= {min_words} words.")
    return texts


def _count_non_text(content, raw):
    """Characters of `content` (decoded from `raw` with replacement) that
    are not text: U+FFFD from undecodable bytes and control characters
    other than tab, newline and carriage return."""
    replaced = content.count("\ufffd") - raw.count("\ufffd".encode("utf-8"))
    controls = sum(
        1
        for char in content
        if (char < " " and char not in "\t\n\r") or "\x7f" <= char <= "\x9f"
    )
    return max(replaced, 0) + controls


def split_heldout(texts, every=50):
    """Every `every`-th document is held out (deterministic)."""
    train = [t for i, t in enumerate(texts) if i % every]
    heldout = [t for i, t in enumerate(texts) if not i % every]
    return train, heldout


def training_dataset(texts, make_preprocessor, batch_size, total_batches, seed, skip_batches=0):
    """The exact stream of pre-processed batches of a whole training run.

    Pass `p` over the data shuffles with `seed + p` and masks with a
    preprocessor seeded `seed + p`, so every batch is a function of
    `(texts, seed, batch index)` alone: a resumed run `skip_batches` the
    batches it already trained on and continues on exactly the same data.
    """
    import tensorflow as tf

    per_pass = len(texts) // batch_size
    if per_pass < 1:
        raise ValueError(
            f"Need at least `batch_size` ({batch_size}) training documents; got {len(texts)}."
        )
    passes = math.ceil(total_batches / per_pass)
    dataset = None
    for p in range(passes):
        preprocessor = make_preprocessor(seed + p)
        part = (
            tf.data.Dataset.from_tensor_slices(texts)
            .shuffle(len(texts), seed=seed + p, reshuffle_each_iteration=False)
            .batch(batch_size, drop_remainder=True)
            .map(preprocessor, num_parallel_calls=1, deterministic=True)
        )
        dataset = part if dataset is None else dataset.concatenate(part)
    return dataset.take(total_batches).skip(skip_batches).prefetch(2)


def evaluation_dataset(texts, preprocessor, batch_size):
    import tensorflow as tf

    return (
        tf.data.Dataset.from_tensor_slices(texts)
        .batch(batch_size)
        .map(preprocessor, num_parallel_calls=1, deterministic=True)
    )


def plot_history(csv_path, png_path):
    """Loss and accuracy curves of a training log, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    steps = [int(r["step"]) for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("loss", "AE + PAR"), ("ae_loss", "AE"), ("par_loss", "PAR")):
        left.plot(steps, [float(r[key]) for r in rows], label=label)
    left.set_xlabel("step")
    left.set_ylabel("training loss")
    left.legend()
    for key, label in (("ae_accuracy", "AE ([M] slots)"), ("par_accuracy", "PAR ([P] slots)")):
        right.plot(steps, [float(r[key]) for r in rows], label=label)
    right.set_xlabel("step")
    right.set_ylabel("training accuracy")
    right.legend()
    fig.suptitle("UniLMv2 PMLM pre-training")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path


def _step_logger(keras, path, steps_per_epoch):
    class StepLog(keras.callbacks.Callback):
        """Appends one row per checkpoint interval (epoch) with its step."""

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            row = {"step": (epoch + 1) * steps_per_epoch}
            for key in ("loss", "ae_loss", "par_loss", "ae_accuracy", "par_accuracy"):
                if key in logs:
                    row[key] = float(logs[key])
            new = not os.path.exists(path)
            with open(path, "a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(row))
                if new:
                    writer.writeheader()
                writer.writerow(row)

    return StepLog()


def _reseed_dropout(keras, seed):
    class ReseedDropout(keras.callbacks.Callback):
        """Sets every random-seed state from `(seed, interval)` at its start.

        Weight files do not hold the dropout seed states, so a resumed run
        would otherwise draw other dropout masks than an uninterrupted one;
        re-seeding each checkpoint interval makes both runs identical.
        """

        def on_epoch_begin(self, epoch, logs=None):
            import numpy as np

            states = [v for v in self.model.variables if v.path.endswith("seed_generator_state")]
            for index, variable in enumerate(states):
                value = np.array([seed * 1000 + index, epoch], dtype=variable.dtype)
                variable.assign(value.reshape(variable.shape))

    return ReseedDropout()


def _stop_after(keras, epochs):
    class StopAfter(keras.callbacks.Callback):
        """Stops after `epochs` intervals of this run (an interruption)."""

        def __init__(self):
            super().__init__()
            self.seen = 0

        def on_epoch_end(self, epoch, logs=None):
            self.seen += 1
            if self.seen >= epochs:
                self.model.stop_training = True

    return StopAfter()


def pretrain(
    inputs,
    output_dir,
    vocabulary=None,
    vocabulary_size=8192,
    num_layers=4,
    num_heads=4,
    hidden_dim=256,
    intermediate_dim=1024,
    max_sequence_length=512,
    sequence_length=128,
    batch_size=32,
    steps=1000,
    warmup_steps=100,
    learning_rate=5e-4,
    checkpoint_every=100,
    heldout_every=50,
    seed=0,
    data_parallel=False,
    model_parallel=None,
    stop_after_checkpoints=None,
    init_from=None,
    command=None,
    log=print,
):
    """Pre-trains a UniLMv2 model with PMLM and writes a preset directory.

    See `tools/pretrain_pmlm.py --help` for the arguments. Returns the
    metadata dict written to `<output_dir>/metadata.json` (or None when
    `stop_after_checkpoints` interrupted the run).
    """
    import keras

    from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
    from keras_unilmv2.models.unilmv2_pmlm import UniLMv2PMLM
    from keras_unilmv2.models.unilmv2_pmlm_preprocessor import UniLMv2PMLMPreprocessor
    from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
    from keras_unilmv2.utils.schedules import WarmupLinearDecay
    from keras_unilmv2.utils.vocabulary import build_wordpiece_vocabulary

    if steps % checkpoint_every:
        raise ValueError(
            f"`steps` ({steps}) must be a multiple of `checkpoint_every` ({checkpoint_every})."
        )
    os.makedirs(output_dir, exist_ok=True)
    if os.path.exists(os.path.join(output_dir, "model.weights.h5")):
        raise ValueError(
            f"{output_dir!r} already holds a finished preset; refusing to overwrite it."
        )
    work_dir = os.path.join(output_dir, "training")
    os.makedirs(work_dir, exist_ok=True)
    keras.utils.set_random_seed(seed)

    texts = read_texts(inputs)
    train_texts, heldout_texts = split_heldout(texts, heldout_every)
    log(f"{len(train_texts)} training and {len(heldout_texts)} held-out documents")

    vocab_path = os.path.join(work_dir, "vocabulary.txt")
    if vocabulary is None and not os.path.exists(vocab_path):
        log(f"building a WordPiece vocabulary of up to {vocabulary_size} tokens")
        build_wordpiece_vocabulary(train_texts, vocabulary_size, output_file=vocab_path)
    elif vocabulary is not None:
        with open(vocabulary, encoding="utf-8") as f, open(vocab_path, "w", encoding="utf-8") as g:
            g.write(f.read())
    tokenizer = UniLMv2Tokenizer(vocabulary=vocab_path, lowercase=True)

    def make_preprocessor(preprocessor_seed):
        return UniLMv2PMLMPreprocessor(
            tokenizer, sequence_length=sequence_length, seed=preprocessor_seed
        )

    distribution = None
    if data_parallel or model_parallel:
        distribution = _distribution(keras, model_parallel)
        keras.distribution.set_distribution(distribution)
    backbone = UniLMv2Backbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        max_sequence_length=max_sequence_length,
    )
    if init_from is not None:
        # Continue pre-training a preset (its vocabulary must be the one used).
        start = UniLMv2Backbone.from_preset(init_from)
        def architecture(model):
            return {k: v for k, v in model.get_config().items() if k != "name"}

        if architecture(start) != architecture(backbone):
            raise ValueError(
                f"`--init-from {init_from}` has another architecture than the "
                "one asked for; pass the same dimensions and vocabulary."
            )
        backbone.set_weights(start.get_weights())
    pmlm = UniLMv2PMLM(backbone, preprocessor=None)
    optimizer = keras.optimizers.AdamW(
        WarmupLinearDecay(learning_rate, warmup_steps, steps),
        beta_2=0.98,
        epsilon=1e-6,
        weight_decay=0.01,
        clipnorm=1.0,
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    pmlm.compile(optimizer=optimizer)

    eval_pre = make_preprocessor(10_000 + seed)
    heldout = evaluation_dataset(heldout_texts, eval_pre, batch_size)
    state_path = os.path.join(work_dir, "untrained_heldout.json")
    if os.path.exists(state_path):
        with open(state_path) as f:
            untrained = json.load(f)
    else:
        untrained = pmlm.evaluate(heldout, verbose=0, return_dict=True)
        with open(state_path, "w") as f:
            json.dump(untrained, f)

    backup_dir = os.path.join(work_dir, "checkpoints")
    done_epochs = 0
    metadata_file = os.path.join(backup_dir, "training_metadata.json")
    if os.path.exists(metadata_file):
        with open(metadata_file) as f:
            done_epochs = json.load(f)["epoch"]
        log(f"resuming after step {done_epochs * checkpoint_every}")
    epochs = steps // checkpoint_every
    data = training_dataset(
        train_texts,
        make_preprocessor,
        batch_size,
        steps,
        seed,
        skip_batches=done_epochs * checkpoint_every,
    )
    callbacks = [
        keras.callbacks.BackupAndRestore(backup_dir, save_freq="epoch", delete_checkpoint=False),
        _step_logger(keras, os.path.join(work_dir, "history.csv"), checkpoint_every),
        _reseed_dropout(keras, seed),
    ]
    if stop_after_checkpoints:
        callbacks.append(_stop_after(keras, stop_after_checkpoints))
    pmlm.fit(
        data,
        epochs=epochs,
        steps_per_epoch=checkpoint_every,
        callbacks=callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    with open(metadata_file) as f:
        if json.load(f)["epoch"] < epochs:
            log("stopped before the last step; run the same command again to resume")
            return None

    trained = pmlm.evaluate(heldout, verbose=0, return_dict=True)
    plot_history(os.path.join(work_dir, "history.csv"), os.path.join(work_dir, "curves.png"))
    backbone.save_to_preset(output_dir)
    tokenizer.save_to_preset(output_dir)
    metadata_path = os.path.join(output_dir, "metadata.json")
    with open(metadata_path) as f:
        metadata = json.load(f)
    metadata.update(
        {
            "description": "UniLMv2 pre-trained here with PMLM (AE + PAR) by tools/pretrain_pmlm.py",
            "command": command,
            "corpus": {
                "inputs": [os.fspath(p) for p in inputs],
                "documents": len(texts),
                "training_documents": len(train_texts),
                "heldout_documents": len(heldout_texts),
                "heldout_rule": f"every {heldout_every}th document",
            },
            "training": {
                "steps": steps,
                "batch_size": batch_size,
                "sequence_length": sequence_length,
                "peak_learning_rate": learning_rate,
                "warmup_steps": warmup_steps,
                "seed": seed,
                "init_from": None if init_from is None else os.fspath(init_from),
            },
            "heldout": {
                "untrained": {k: round(float(v), 4) for k, v in untrained.items()},
                "trained": {k: round(float(v), 4) for k, v in trained.items()},
            },
        }
    )
    if init_from is not None:
        _record_previous_stages(metadata, init_from)
    with open(metadata_path, "w") as f:
        json.dump(metadata, f, indent=2)
    if distribution is not None:
        keras.distribution.set_distribution(None)
    return metadata


def _record_previous_stages(metadata, init_from):
    """Keeps the history of a continued run: the starting preset's commands
    and figures go to `previous_stages`, this run's held-out figures of the
    starting model become `heldout["start"]`, and `heldout["untrained"]`
    stays the randomly initialised model's (from the first stage)."""
    path = os.path.join(os.fspath(init_from), "metadata.json")
    previous = {}
    if os.path.exists(path):
        with open(path) as f:
            previous = json.load(f)
    heldout = metadata["heldout"]
    heldout["start"] = heldout["untrained"]
    if "heldout" in previous:
        heldout["untrained"] = previous["heldout"]["untrained"]
    stages = list(previous.get("previous_stages", []))
    if "command" in previous:
        stages.append(
            {
                "command": previous["command"],
                "training": previous.get("training"),
                "heldout_trained": previous.get("heldout", {}).get("trained"),
            }
        )
    metadata["previous_stages"] = stages
    metadata["heldout"] = {k: heldout[k] for k in ("untrained", "start", "trained")}


def _distribution(keras, model_parallel):
    """DataParallel over all devices, or ModelParallel on a `batch x model` mesh."""
    devices = keras.distribution.list_devices()
    if not model_parallel:
        return keras.distribution.DataParallel(devices=devices)
    from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone

    data, model = (int(v) for v in model_parallel.lower().split("x"))
    if data * model != len(devices):
        raise ValueError(
            f"`--mesh {model_parallel}` needs {data * model} devices; found {len(devices)}."
        )
    mesh = keras.distribution.DeviceMesh((data, model), ["batch", "model"], devices)
    layout_map = UniLMv2Backbone.get_layout_map(mesh)
    return keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")
