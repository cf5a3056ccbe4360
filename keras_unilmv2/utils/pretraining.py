"""PMLM pre-training from plain text: data, training loop, preset export.

`tools/pretrain_pmlm.py` is the command line over `pretrain()`.
"""

import csv
import hashlib
import json
import math
import os
import re
import shutil
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


# === Crash-safe checkpoints ===

CHECKPOINT_PATTERN = re.compile(r"^ckpt-(\d+)\.json$")
RUN_SETTINGS_FILE = "run.json"
KEEP_CHECKPOINTS = 2


def _fsync(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def write_json_atomically(path, data):
    """Writes `data` to a temporary file, then renames it over `path`: a
    reader sees the old or the new file, never a partial one."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _checkpoint_files(backup_dir, epoch):
    stem = os.path.join(backup_dir, f"ckpt-{epoch:06d}")
    return stem + ".weights.h5", stem + ".json"


def save_checkpoint(model, backup_dir, epoch, keep=KEEP_CHECKPOINTS):
    """Saves `model` (weights and optimizer state) after `epoch` intervals.

    The weights go to a temporary file that is renamed into place, then a
    small JSON record with the epoch and the file's sha256 is written the
    same way: the record is the commit, a checkpoint without it (a run
    killed mid-write) is never read. The newest `keep` checkpoints stay.
    """
    from keras_unilmv2.utils.preset_utils import file_sha256

    os.makedirs(backup_dir, exist_ok=True)
    weights, record = _checkpoint_files(backup_dir, epoch)
    tmp = os.path.join(backup_dir, f"tmp-ckpt-{epoch:06d}.weights.h5")
    model.save_weights(tmp, overwrite=True)
    _fsync(tmp)
    os.replace(tmp, weights)
    write_json_atomically(record, {"epoch": epoch, "sha256": file_sha256(weights)})
    for old_epoch, old_weights, old_record in list_checkpoints(backup_dir)[keep:]:
        os.remove(old_record)
        if os.path.exists(old_weights):
            os.remove(old_weights)


def list_checkpoints(backup_dir):
    """`(epoch, weights, record)` of the committed checkpoints, newest first."""
    if not os.path.isdir(backup_dir):
        return []
    found = []
    for name in os.listdir(backup_dir):
        match = CHECKPOINT_PATTERN.match(name)
        if match:
            found.append((int(match.group(1)), *_checkpoint_files(backup_dir, int(match.group(1)))))
    return sorted(found, reverse=True)


def latest_valid_checkpoint(backup_dir, log=print):
    """`(epoch, weights path)` of the newest checkpoint that is intact, or
    `(0, None)`. A checkpoint whose file is missing or whose bytes differ from
    its recorded sha256 is skipped (with a message), so a run killed while
    writing resumes from the previous one."""
    from keras_unilmv2.utils.preset_utils import file_sha256

    for epoch, weights, record in list_checkpoints(backup_dir):
        try:
            with open(record) as f:
                expected = json.load(f)["sha256"]
            if os.path.isfile(weights) and file_sha256(weights) == expected:
                return epoch, weights
            problem = "missing" if not os.path.isfile(weights) else "corrupted"
        except (OSError, ValueError, KeyError, TypeError) as e:
            problem = f"unreadable record ({e})"
        log(f"skipping the checkpoint {weights} ({problem}); trying an older one")
    # A checkpoint written by Keras' BackupAndRestore (older versions).
    legacy = os.path.join(backup_dir, "latest.weights.h5")
    legacy_record = os.path.join(backup_dir, "training_metadata.json")
    if os.path.isfile(legacy) and os.path.isfile(legacy_record):
        try:
            import h5py

            with h5py.File(legacy, "r"), open(legacy_record) as f:
                return int(json.load(f)["epoch"]), legacy
        except (OSError, ValueError, KeyError) as e:
            log(f"skipping the checkpoint {legacy} (unreadable: {e})")
    return 0, None


def check_run_settings(backup_dir, settings):
    """Refuses to resume checkpoints written with other settings.

    The first run stores `settings` in `<backup_dir>/run.json`; a later run
    with any different value raises a `ValueError` listing the differences
    (resuming them would silently mix two runs).
    """
    path = os.path.join(backup_dir, RUN_SETTINGS_FILE)
    if not os.path.exists(path):
        os.makedirs(backup_dir, exist_ok=True)
        write_json_atomically(path, settings)
        return
    with open(path) as f:
        stored = json.load(f)
    differences = [
        f"{key}: {stored.get(key)!r} in the checkpoints, {settings.get(key)!r} now"
        for key in sorted(set(stored) | set(settings))
        if stored.get(key) != settings.get(key)
    ]
    if differences:
        raise ValueError(
            f"The training state in {os.path.dirname(backup_dir)!r} is from a run "
            "with other settings; resuming it would mix two runs. Differences: "
            + "; ".join(differences)
            + ". Rerun with the same settings to resume, or use another "
            "`--output` directory (or delete its `training` folder to start over)."
        )


def _truncate_history(path, last_step):
    """Drops log rows after the checkpoint a run resumes from."""
    if not os.path.exists(path):
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    kept = rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= last_step]
    if len(kept) != len(rows):
        tmp = path + ".tmp"
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(kept)
        os.replace(tmp, path)


def _checkpointer(keras, backup_dir, restore_from, restore_epoch):
    class CrashSafeBackup(keras.callbacks.Callback):
        """Restores `restore_from` at the start, checkpoints every interval."""

        def __init__(self):
            super().__init__()
            self.last_epoch = restore_epoch

        def on_train_begin(self, logs=None):
            if restore_from is None:
                return
            optimizer = self.model.optimizer
            if optimizer is not None and not optimizer.built:
                # Its variables must exist to receive the saved state.
                optimizer.build(self.model.trainable_variables)
            self.model.load_weights(restore_from)

        def on_epoch_end(self, epoch, logs=None):
            save_checkpoint(self.model, backup_dir, epoch + 1)
            self.last_epoch = epoch + 1

    return CrashSafeBackup()


def _publish_preset(export_dir, output_dir):
    """Moves a finished preset into `output_dir`, `model.weights.h5` last:
    the preset is complete once that file exists."""
    names = sorted(os.listdir(export_dir), key=lambda n: n == "model.weights.h5")
    for name in names:
        target = os.path.join(output_dir, name)
        if os.path.isdir(target):
            shutil.rmtree(target)
        os.replace(os.path.join(export_dir, name), target)
    shutil.rmtree(export_dir)


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
    from keras_unilmv2.utils.preset_utils import file_sha256
    from keras_unilmv2.utils.schedules import WarmupLinearDecay
    from keras_unilmv2.utils.vocabulary import build_wordpiece_vocabulary

    if steps % checkpoint_every:
        raise ValueError(
            f"`steps` ({steps}) must be a multiple of `checkpoint_every` ({checkpoint_every})."
        )
    if sequence_length > max_sequence_length:
        # The PMLM layout gives its slots positions 0..sequence_length-1
        # (pseudo masks reuse their token's position).
        raise ValueError(
            f"`sequence_length` (--sequence-length {sequence_length}) exceeds the "
            f"position table (--max-sequence-length {max_sequence_length}): the "
            f"PMLM layout uses positions 0..{sequence_length - 1}. Use a "
            f"sequence length of at most {max_sequence_length} or a larger table."
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
    # Written to a temporary file and renamed: never a truncated vocabulary.
    vocab_tmp = vocab_path + ".tmp"
    if vocabulary is None and not os.path.exists(vocab_path):
        log(f"building a WordPiece vocabulary of up to {vocabulary_size} tokens")
        build_wordpiece_vocabulary(train_texts, vocabulary_size, output_file=vocab_tmp)
        os.replace(vocab_tmp, vocab_path)
    elif vocabulary is not None:
        if not os.path.isfile(vocabulary):
            raise ValueError(f"`--vocab` file does not exist: {vocabulary!r}")
        with open(vocabulary, encoding="utf-8") as f, open(vocab_tmp, "w", encoding="utf-8") as g:
            g.write(f.read())
        os.replace(vocab_tmp, vocab_path)
    tokenizer = UniLMv2Tokenizer(vocabulary=vocab_path, lowercase=True)

    backup_dir = os.path.join(work_dir, "checkpoints")
    check_run_settings(
        backup_dir,
        {
            "vocabulary_size": tokenizer.vocabulary_size(),
            "vocabulary_sha256": file_sha256(vocab_path),
            "corpus_documents": len(texts),
            "corpus_sha256": hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest(),
            "num_layers": num_layers,
            "num_heads": num_heads,
            "hidden_dim": hidden_dim,
            "intermediate_dim": intermediate_dim,
            "max_sequence_length": max_sequence_length,
            "sequence_length": sequence_length,
            "batch_size": batch_size,
            "steps": steps,
            "warmup_steps": warmup_steps,
            "learning_rate": learning_rate,
            "checkpoint_every": checkpoint_every,
            "heldout_every": heldout_every,
            "seed": seed,
            "init_from": None if init_from is None else os.fspath(init_from),
        },
    )

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
    untrained = None
    if os.path.exists(state_path):
        try:
            with open(state_path) as f:
                untrained = json.load(f)
        except ValueError:  # Written before atomic writes; recompute.
            untrained = None
    if untrained is None:
        untrained = pmlm.evaluate(heldout, verbose=0, return_dict=True)
        write_json_atomically(state_path, {k: float(v) for k, v in untrained.items()})

    done_epochs, restore_from = latest_valid_checkpoint(backup_dir, log)
    history_path = os.path.join(work_dir, "history.csv")
    _truncate_history(history_path, done_epochs * checkpoint_every)
    if restore_from is not None:
        log(f"resuming after step {done_epochs * checkpoint_every} from {restore_from}")
    epochs = steps // checkpoint_every
    data = training_dataset(
        train_texts,
        make_preprocessor,
        batch_size,
        steps,
        seed,
        skip_batches=done_epochs * checkpoint_every,
    )
    checkpointer = _checkpointer(keras, backup_dir, restore_from, done_epochs)
    callbacks = [
        # The log row first: a run killed between the two rewrites the row
        # (rows after the checkpoint it resumes from are dropped).
        _step_logger(keras, history_path, checkpoint_every),
        checkpointer,
        _reseed_dropout(keras, seed),
    ]
    if stop_after_checkpoints:
        callbacks.append(_stop_after(keras, stop_after_checkpoints))
    if done_epochs < epochs:
        pmlm.fit(
            data,
            epochs=epochs,
            initial_epoch=done_epochs,
            steps_per_epoch=checkpoint_every,
            callbacks=callbacks,
            verbose=1 if sys.stdout.isatty() else 2,
        )
    else:  # Trained to the end; the export had not finished.
        checkpointer.set_model(pmlm)
        checkpointer.on_train_begin()
    if checkpointer.last_epoch < epochs:
        log("stopped before the last step; run the same command again to resume")
        return None

    trained = pmlm.evaluate(heldout, verbose=0, return_dict=True)
    plot_history(history_path, os.path.join(work_dir, "curves.png"))
    # The preset is written aside and moved in, weights last (see
    # `_publish_preset`): a run killed while exporting exports again.
    export_dir = os.path.join(work_dir, "export")
    if os.path.exists(export_dir):
        shutil.rmtree(export_dir)
    backbone.save_to_preset(export_dir)
    tokenizer.save_to_preset(export_dir)
    metadata_path = os.path.join(export_dir, "metadata.json")
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
    write_json_atomically(metadata_path, metadata)
    _publish_preset(export_dir, output_dir)
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
