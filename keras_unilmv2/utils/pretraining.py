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


def _throughput(keras, steps_per_interval, micro_batches, tokens_per_batch, total_steps, log):
    class Throughput(keras.callbacks.Callback):
        """Prints, per checkpoint interval, the optimizer steps done, the
        input tokens per second and the losses; keeps the rates."""

        def __init__(self):
            super().__init__()
            self.rates = []
            self.start = None

        def on_epoch_begin(self, epoch, logs=None):
            import time

            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            import time

            seconds = max(time.perf_counter() - self.start, 1e-9)
            rate = micro_batches * tokens_per_batch / seconds
            self.rates.append(rate)
            logs = logs or {}
            losses = ", ".join(
                f"{key} {float(logs[key]):.4f}"
                for key in ("loss", "ae_loss", "par_loss")
                if key in logs
            )
            log(
                f"step {(epoch + 1) * steps_per_interval}/{total_steps}: "
                f"{rate:,.0f} tokens/s ({steps_per_interval / seconds:.2f} steps/s), {losses}"
            )

    return Throughput()


def _accumulated_schedule(keras, schedule, accumulation):
    """Wraps a schedule of optimizer updates for gradient accumulation.

    Keras optimizers count every micro-batch in `_iterations` and call the
    schedule with it; this one calls `schedule(iterations // accumulation)`,
    the number of updates made so far, so the rate follows the same curve
    over the updates as without accumulation (constant within an update).
    """
    from keras import ops

    class AccumulatedSchedule(keras.optimizers.schedules.LearningRateSchedule):
        def __init__(self, schedule, accumulation):
            self.schedule = schedule
            self.accumulation = accumulation

        def __call__(self, step):
            return self.schedule(ops.floor_divide(step, self.accumulation))

        def get_config(self):
            return {
                "schedule": keras.saving.serialize_keras_object(self.schedule),
                "accumulation": self.accumulation,
            }

    return AccumulatedSchedule(schedule, accumulation)


MIXED_PRECISION = {None: None, "float32": None, "bfloat16": "mixed_bfloat16",
                   "float16": "mixed_float16", "mixed_bfloat16": "mixed_bfloat16",
                   "mixed_float16": "mixed_float16"}


def _check_options(
    mixed_precision,
    gradient_accumulation_steps,
    cased,
    mask_rate,
    span_probability,
    min_span_length,
    max_span_length,
    mask_token_replacement_rates,
    sequence_length,
    streaming,
    vocab_sample_lines,
    heldout_lines,
    heldout_file,
    shuffle_buffer,
):
    """Checks the training options before anything is read or written;
    returns `(mixed precision policy name or None, replacement rates)`."""
    from keras_unilmv2.models.unilmv2_pmlm_preprocessor import UniLMv2PMLMPreprocessor
    from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
    from keras_unilmv2.utils.checks import check_int
    from keras_unilmv2.utils.vocabulary import SPECIAL_TOKENS

    if not isinstance(mixed_precision, (str, type(None))) or mixed_precision not in MIXED_PRECISION:
        raise ValueError(
            "`mixed_precision` (--mixed-precision) must be None, 'bfloat16' or "
            f"'float16'. Received: mixed_precision={mixed_precision!r}"
        )
    check_int("gradient_accumulation_steps", gradient_accumulation_steps, 1,
              " (--gradient-accumulation-steps; 1: no accumulation)")
    if not isinstance(cased, bool):
        raise ValueError(f"`cased` (--cased) must be a bool. Received: cased={cased!r}")
    if not isinstance(streaming, bool):
        raise ValueError(f"`streaming` (--streaming) must be a bool. Received: streaming={streaming!r}")
    check_int("vocab_sample_lines", vocab_sample_lines, 1, " (--vocab-sample-lines)")
    check_int("heldout_lines", heldout_lines, 1, " (--heldout-lines)")
    check_int("shuffle_buffer", shuffle_buffer, 1, " (--shuffle-buffer)")
    if heldout_file is not None and not os.path.isfile(os.fspath(heldout_file)):
        raise ValueError(
            f"`heldout_file` (--heldout-file) must be an existing text file. "
            f"Received: heldout_file={heldout_file!r}"
        )
    if heldout_file is not None and not streaming:
        raise ValueError(
            "`heldout_file` (--heldout-file) is for `--streaming` runs; without "
            "it every `--heldout-every`-th document is held out. "
            f"Received: heldout_file={heldout_file!r}, streaming=False"
        )
    if mask_token_replacement_rates is not None:
        mask_token_replacement_rates = tuple(mask_token_replacement_rates)
    # The preprocessor checks the masking settings (naming each one); a
    # tokenizer of the special tokens is enough for that.
    tokenizer = UniLMv2Tokenizer(vocabulary=list(SPECIAL_TOKENS) + ["a"], lowercase=not cased)
    UniLMv2PMLMPreprocessor(
        tokenizer,
        sequence_length=sequence_length,
        mask_rate=mask_rate,
        span_probability=span_probability,
        min_span_length=min_span_length,
        max_span_length=max_span_length,
        mask_token_replacement_rates=mask_token_replacement_rates,
    )
    return MIXED_PRECISION[mixed_precision], mask_token_replacement_rates


def streaming_files(paths):
    """The text files a `--streaming` run reads: files as given, folders
    searched recursively for `*.txt`, `*.text` and `*.gz` files. `.rst.txt`
    files are refused (their documents are paragraphs, not lines)."""
    files = []
    for path in paths:
        path = os.path.expanduser(os.fspath(path))
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                files += [
                    os.path.join(root, n)
                    for n in sorted(names)
                    if n.endswith(TEXT_SUFFIXES + (".gz",))
                ]
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise ValueError(f"`--input` path does not exist: {path!r}")
    if not files:
        raise ValueError(f"No text files found in {list(paths)!r}.")
    rst = [f for f in files if f.endswith((".rst.txt", ".rst.txt.gz"))]
    if rst:
        raise ValueError(
            "`--streaming` reads one document per line; reStructuredText files "
            f"need paragraph parsing, which only the in-memory mode does: {rst[:3]}. "
            "Drop `--streaming` or convert them to one paragraph per line."
        )
    return sorted(files)


def _stream_lines(files):
    """Non-blank lines (stripped) of `files` in the order `streaming_dataset`
    reads them (sorted, plain files first, then gzipped), read lazily."""
    import gzip

    ordered = [f for f in files if not f.endswith(".gz")] + [f for f in files if f.endswith(".gz")]
    for name in ordered:
        opener = gzip.open if name.endswith(".gz") else open
        with opener(name, "rt", encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line:
                    yield line


def _streaming_corpus(files, heldout_file, heldout_lines, vocab_sample_lines):
    """`(held-out texts, vocabulary sample)`: the held-out documents come from
    `heldout_file` or are the first `heldout_lines` lines; the sample is the
    next `vocab_sample_lines` lines that are not held out."""
    import itertools

    lines = _stream_lines(files)
    if heldout_file is not None:
        heldout = read_texts([heldout_file], min_words=1)
    else:
        heldout = list(itertools.islice(lines, heldout_lines))
    excluded = set(heldout)
    sample = list(itertools.islice((t for t in lines if t not in excluded), vocab_sample_lines))
    if not sample:
        raise ValueError(
            f"The input files {files[:3]} hold no training line after the "
            f"{len(heldout)} held-out ones."
        )
    return heldout, sample


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


def check_run_settings(backup_dir, settings, defaults=None):
    """Refuses to resume checkpoints written with other settings.

    The first run stores `settings` in `<backup_dir>/run.json`; a later run
    with any different value raises a `ValueError` listing the differences
    (resuming them would silently mix two runs). `defaults` maps settings
    added after a `run.json` may have been written to the value they had
    then: a stored file without such a key counts as holding its default
    (so runs started by an older version resume when the new setting is
    left at its default).
    """
    path = os.path.join(backup_dir, RUN_SETTINGS_FILE)
    if not os.path.exists(path):
        os.makedirs(backup_dir, exist_ok=True)
        write_json_atomically(path, settings)
        return
    with open(path) as f:
        stored = json.load(f)
    for key, value in (defaults or {}).items():
        stored.setdefault(key, value)
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


def pretraining_preprocessor(
    tokenizer,
    sequence_length,
    seed,
    mask_rate=0.15,
    span_probability=0.4,
    min_span_length=2,
    max_span_length=6,
    mask_token_replacement_rates=None,
):
    """The `UniLMv2PMLMPreprocessor` that `pretrain()` masks with.

    Example:
    ```python
    preprocessor = pretraining_preprocessor(tokenizer, 128, seed=0, mask_rate=0.2)
    x, y, sample_weight = preprocessor(["the quick fox ran to the park ."])
    ```
    """
    from keras_unilmv2.models.unilmv2_pmlm_preprocessor import UniLMv2PMLMPreprocessor

    return UniLMv2PMLMPreprocessor(
        tokenizer,
        sequence_length=sequence_length,
        mask_rate=mask_rate,
        span_probability=span_probability,
        min_span_length=min_span_length,
        max_span_length=max_span_length,
        mask_token_replacement_rates=mask_token_replacement_rates,
        seed=seed,
    )


def build_pretraining_model(
    vocabulary_size,
    num_layers=4,
    num_heads=4,
    hidden_dim=256,
    intermediate_dim=1024,
    max_sequence_length=512,
    steps=1000,
    warmup_steps=100,
    learning_rate=5e-4,
    gradient_accumulation_steps=1,
    mixed_precision=None,
    init_from=None,
):
    """The compiled `UniLMv2PMLM` (and its backbone) that `pretrain()` trains.

    AdamW (beta_2 0.98, epsilon 1e-6, weight decay 0.01 but not on biases
    and layer-norm scales, clipnorm 1.0) over a warm-up + linear-decay
    schedule counted in optimizer updates. With `gradient_accumulation_steps`
    N > 1 the optimizer averages the gradients of N batches per update (Keras'
    `gradient_accumulation_steps`) and the schedule reads `iterations // N`.
    `mixed_precision` (`None`, `"bfloat16"` or `"float16"`) builds the
    layers under the `mixed_*` policy (variables stay float32; with
    float16, `compile` adds dynamic loss scaling).

    Returns:
        `(backbone, pmlm)`.

    Example:
    ```python
    backbone, pmlm = build_pretraining_model(
        8192, steps=1000, gradient_accumulation_steps=4, mixed_precision="bfloat16"
    )
    pmlm.optimizer.gradient_accumulation_steps  # 4
    ```
    """
    import keras

    from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
    from keras_unilmv2.models.unilmv2_pmlm import UniLMv2PMLM
    from keras_unilmv2.utils.schedules import WarmupLinearDecay

    policy = MIXED_PRECISION.get(mixed_precision, mixed_precision)
    dtype = None if policy is None else keras.DTypePolicy(policy)
    backbone = UniLMv2Backbone(
        vocabulary_size=vocabulary_size,
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        max_sequence_length=max_sequence_length,
        dtype=dtype,
    )
    if init_from is not None:
        # Continue pre-training a preset (its vocabulary must be the one used).
        start = UniLMv2Backbone.from_preset(init_from)

        def architecture(model):
            return {k: v for k, v in model.get_config().items() if k not in ("name", "dtype")}

        if architecture(start) != architecture(backbone):
            raise ValueError(
                f"`--init-from {init_from}` has another architecture than the "
                "one asked for; pass the same dimensions and vocabulary."
            )
        backbone.set_weights(start.get_weights())
    pmlm = UniLMv2PMLM(backbone, preprocessor=None, dtype=dtype)
    schedule = WarmupLinearDecay(learning_rate, warmup_steps, steps)
    if gradient_accumulation_steps > 1:
        schedule = _accumulated_schedule(keras, schedule, gradient_accumulation_steps)
    optimizer = keras.optimizers.AdamW(
        schedule,
        beta_2=0.98,
        epsilon=1e-6,
        weight_decay=0.01,
        clipnorm=1.0,
        gradient_accumulation_steps=(
            gradient_accumulation_steps if gradient_accumulation_steps > 1 else None
        ),
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    pmlm.compile(optimizer=optimizer)
    return backbone, pmlm


# Settings added to `run.json` after its first version, with the value
# they had before (see `check_run_settings`).
_NEW_SETTING_DEFAULTS = {
    "mixed_precision": None,
    "gradient_accumulation_steps": 1,
    "lowercase": True,
    "mask_rate": 0.15,
    "span_probability": 0.4,
    "min_span_length": 2,
    "max_span_length": 6,
    "mask_token_replacement_rates": None,
    "streaming": False,
}


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
    mixed_precision=None,
    gradient_accumulation_steps=1,
    cased=False,
    mask_rate=0.15,
    span_probability=0.4,
    min_span_length=2,
    max_span_length=6,
    mask_token_replacement_rates=None,
    streaming=False,
    vocab_sample_lines=100_000,
    heldout_file=None,
    heldout_lines=1000,
    shuffle_buffer=10_000,
):
    """Pre-trains a UniLMv2 model with PMLM and writes a preset directory.

    See `tools/pretrain_pmlm.py --help` for the arguments. Returns the
    metadata dict written to `<output_dir>/metadata.json` (or None when
    `stop_after_checkpoints` interrupted the run).

    Steps count optimizer updates: `steps`, `warmup_steps` and
    `checkpoint_every` are updates, each of `gradient_accumulation_steps`
    batches of `batch_size` sequences (the effective batch is their
    product; the data read is `steps * gradient_accumulation_steps`
    batches).

    With `streaming=True` the training documents (one a line) are read from
    the files as they are consumed (`keras_unilmv2.utils.streaming`); the
    vocabulary is `vocabulary` or built from `vocab_sample_lines` lines; the
    held-out documents are `heldout_file`'s lines or the first
    `heldout_lines` lines, dropped from the training stream.

    Example:
    ```python
    pretrain(["corpus/"], "my_preset", steps=2000, batch_size=32,
             gradient_accumulation_steps=4, mixed_precision="bfloat16")
    ```
    """
    import keras

    policy, mask_token_replacement_rates = _check_options(
        mixed_precision,
        gradient_accumulation_steps,
        cased,
        mask_rate,
        span_probability,
        min_span_length,
        max_span_length,
        mask_token_replacement_rates,
        sequence_length,
        streaming,
        vocab_sample_lines,
        heldout_lines,
        heldout_file,
        shuffle_buffer,
    )
    options = dict(
        mixed_precision=policy,
        gradient_accumulation_steps=gradient_accumulation_steps,
        lowercase=not cased,
        masking=dict(
            mask_rate=mask_rate,
            span_probability=span_probability,
            min_span_length=min_span_length,
            max_span_length=max_span_length,
            mask_token_replacement_rates=mask_token_replacement_rates,
        ),
        streaming=streaming,
        vocab_sample_lines=vocab_sample_lines,
        heldout_file=heldout_file,
        heldout_lines=heldout_lines,
        shuffle_buffer=shuffle_buffer,
    )
    try:
        return _pretrain(
            keras, inputs, output_dir, vocabulary, vocabulary_size, num_layers, num_heads,
            hidden_dim, intermediate_dim, max_sequence_length, sequence_length, batch_size,
            steps, warmup_steps, learning_rate, checkpoint_every, heldout_every, seed,
            data_parallel, model_parallel, stop_after_checkpoints, init_from, command, log,
            options,
        )
    finally:
        if data_parallel or model_parallel:
            keras.distribution.set_distribution(None)


def _pretrain(
    keras, inputs, output_dir, vocabulary, vocabulary_size, num_layers, num_heads,
    hidden_dim, intermediate_dim, max_sequence_length, sequence_length, batch_size,
    steps, warmup_steps, learning_rate, checkpoint_every, heldout_every, seed,
    data_parallel, model_parallel, stop_after_checkpoints, init_from, command, log,
    options,
):
    from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone
    from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
    from keras_unilmv2.utils.preset_utils import file_sha256
    from keras_unilmv2.utils.vocabulary import build_wordpiece_vocabulary

    accumulation = options["gradient_accumulation_steps"]
    lowercase = options["lowercase"]
    streaming = options["streaming"]
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

    if streaming:
        files = streaming_files(inputs)
        heldout_texts, vocab_texts = _streaming_corpus(
            files, options["heldout_file"], options["heldout_lines"],
            options["vocab_sample_lines"],
        )
        train_texts = texts = None
        log(
            f"streaming {len(files)} files; {len(heldout_texts)} held-out documents"
            + ("" if options["heldout_file"] else f" (the first {len(heldout_texts)} lines)")
        )
        corpus_settings = {
            "corpus_files": [[f, os.path.getsize(f)] for f in files],
            "heldout_documents": len(heldout_texts),
            "heldout_sha256": hashlib.sha256(
                "\n".join(heldout_texts).encode("utf-8")
            ).hexdigest(),
            "shuffle_buffer": options["shuffle_buffer"],
        }
        if vocabulary is None:
            corpus_settings["vocab_sample_lines"] = options["vocab_sample_lines"]
    else:
        texts = read_texts(inputs)
        train_texts, heldout_texts = split_heldout(texts, heldout_every)
        vocab_texts = train_texts
        log(f"{len(train_texts)} training and {len(heldout_texts)} held-out documents")
        corpus_settings = {
            "corpus_documents": len(texts),
            "corpus_sha256": hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest(),
            "heldout_every": heldout_every,
        }

    vocab_path = os.path.join(work_dir, "vocabulary.txt")
    # Written to a temporary file and renamed: never a truncated vocabulary.
    vocab_tmp = vocab_path + ".tmp"
    if vocabulary is None and not os.path.exists(vocab_path):
        log(
            f"building a WordPiece vocabulary of up to {vocabulary_size} tokens"
            f" from {len(vocab_texts)} documents" + ("" if lowercase else " (cased)")
        )
        build_wordpiece_vocabulary(
            vocab_texts, vocabulary_size, lowercase=lowercase, output_file=vocab_tmp
        )
        os.replace(vocab_tmp, vocab_path)
    elif vocabulary is not None:
        if not os.path.isfile(vocabulary):
            raise ValueError(f"`--vocab` file does not exist: {vocabulary!r}")
        with open(vocabulary, encoding="utf-8") as f, open(vocab_tmp, "w", encoding="utf-8") as g:
            g.write(f.read())
        os.replace(vocab_tmp, vocab_path)
    tokenizer = UniLMv2Tokenizer(vocabulary=vocab_path, lowercase=lowercase)

    backup_dir = os.path.join(work_dir, "checkpoints")
    masking = options["masking"]
    settings = {
        "vocabulary_size": tokenizer.vocabulary_size(),
        "vocabulary_sha256": file_sha256(vocab_path),
        **corpus_settings,
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
        "seed": seed,
        "init_from": None if init_from is None else os.fspath(init_from),
        "mixed_precision": options["mixed_precision"],
        "gradient_accumulation_steps": accumulation,
        "lowercase": lowercase,
        **masking,
        "mask_token_replacement_rates": (
            None
            if masking["mask_token_replacement_rates"] is None
            else list(masking["mask_token_replacement_rates"])
        ),
        "streaming": streaming,
    }
    check_run_settings(backup_dir, settings, defaults=_NEW_SETTING_DEFAULTS)

    def make_preprocessor(preprocessor_seed):
        return pretraining_preprocessor(tokenizer, sequence_length, preprocessor_seed, **masking)

    distribution = None
    if data_parallel or model_parallel:
        distribution = _distribution(keras, model_parallel)
        keras.distribution.set_distribution(distribution)
    backbone, pmlm = build_pretraining_model(
        tokenizer.vocabulary_size(),
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        max_sequence_length=max_sequence_length,
        steps=steps,
        warmup_steps=warmup_steps,
        learning_rate=learning_rate,
        gradient_accumulation_steps=accumulation,
        mixed_precision=options["mixed_precision"],
        init_from=init_from,
    )

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
    # Keras counts batches: an update every `accumulation` of them.
    batches_per_epoch = checkpoint_every * accumulation
    consumed = done_epochs * batches_per_epoch
    if streaming:
        from keras_unilmv2.utils.streaming import streaming_dataset

        data = streaming_dataset(
            files,
            tokenizer,
            sequence_length,
            batch_size,
            seed,
            shuffle_buffer=options["shuffle_buffer"],
            preprocessor=make_preprocessor(seed),
            skip_batches=consumed,
            exclude_lines=heldout_texts,
        )
    else:
        data = training_dataset(
            train_texts,
            make_preprocessor,
            batch_size,
            steps * accumulation,
            seed,
            skip_batches=consumed,
        )
    checkpointer = _checkpointer(keras, backup_dir, restore_from, done_epochs)
    throughput = _throughput(
        keras, checkpoint_every, batches_per_epoch, batch_size * sequence_length, steps, log
    )
    callbacks = [
        # The log row first: a run killed between the two rewrites the row
        # (rows after the checkpoint it resumes from are dropped).
        _step_logger(keras, history_path, checkpoint_every),
        checkpointer,
        _reseed_dropout(keras, seed),
        throughput,
    ]
    if stop_after_checkpoints:
        callbacks.append(_stop_after(keras, stop_after_checkpoints))
    if done_epochs < epochs:
        pmlm.fit(
            data,
            epochs=epochs,
            initial_epoch=done_epochs,
            steps_per_epoch=batches_per_epoch,
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
    if options["mixed_precision"] is not None:
        # The preset is float32 (the variables are; the policy is a
        # training choice, not part of the model).
        config = dict(backbone.get_config(), dtype="float32")
        exported = UniLMv2Backbone.from_config(config)
        exported.set_weights(backbone.get_weights())
    else:
        exported = backbone
    exported.save_to_preset(export_dir)
    tokenizer.save_to_preset(export_dir)
    metadata_path = os.path.join(export_dir, "metadata.json")
    with open(metadata_path) as f:
        metadata = json.load(f)
    if streaming:
        corpus = {
            "inputs": [os.fspath(p) for p in inputs],
            "streaming": True,
            "files": len(files),
            "heldout_documents": len(heldout_texts),
            "heldout_rule": (
                f"the lines of {os.fspath(options['heldout_file'])}"
                if options["heldout_file"]
                else f"the first {len(heldout_texts)} lines"
            )
            + " (dropped from the training stream)",
        }
        if vocabulary is None:
            corpus["vocabulary_sample_lines"] = options["vocab_sample_lines"]
    else:
        corpus = {
            "inputs": [os.fspath(p) for p in inputs],
            "documents": len(texts),
            "training_documents": len(train_texts),
            "heldout_documents": len(heldout_texts),
            "heldout_rule": f"every {heldout_every}th document",
        }
    metadata.update(
        {
            "description": "UniLMv2 pre-trained here with PMLM (AE + PAR) by tools/pretrain_pmlm.py",
            "command": command,
            "corpus": corpus,
            "training": {
                "steps": steps,
                "batch_size": batch_size,
                "gradient_accumulation_steps": accumulation,
                "effective_batch_size": batch_size * accumulation,
                "sequence_length": sequence_length,
                "peak_learning_rate": learning_rate,
                "warmup_steps": warmup_steps,
                "seed": seed,
                "init_from": None if init_from is None else os.fspath(init_from),
                "mixed_precision": options["mixed_precision"],
                "lowercase": lowercase,
                "masking": _settings_masking(settings),
                "tokens_per_second": (
                    round(sorted(throughput.rates)[len(throughput.rates) // 2])
                    if throughput.rates
                    else None
                ),
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


def _settings_masking(settings):
    return {
        key: settings[key]
        for key in (
            "mask_rate",
            "span_probability",
            "min_span_length",
            "max_span_length",
            "mask_token_replacement_rates",
        )
    }


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
