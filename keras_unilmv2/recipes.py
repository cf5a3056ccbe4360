"""Fine-tuning and decoding runs over the standard data files: the library
behind `tools/finetune.py` and `tools/decode.py`.

`finetune()` fine-tunes a preset on GLUE TSV files (`"classify"`), SQuAD
JSON files (`"qa"`) or s2s-ft files (`"seq2seq"`), one `fit` call per epoch
on a fixed warm-up/linear-decay schedule, with a crash-safe checkpoint
after every epoch: running it again with the same settings resumes after
the last finished epoch (same data order, dropout and target noise as an
uninterrupted run), and running it with other settings is refused, naming
what differs. At the end it scores the dev file with the official metric
(`keras_unilmv2.metrics`), writes the dev predictions, the fine-tuned task
as a preset (`<output>/preset`) and `<output>/results.json`.

`decode()` writes the beam-search outputs of a seq2seq preset for a source
file (one line per example, or JSONL n-best lists with scores) and can
score them against references with ROUGE.

Layout of an output directory:

    <output>/training/checkpoints/   run.json (the settings), ckpt-*.weights.h5
                                     (removed once the run is complete)
    <output>/training/history.json   one row per finished epoch
    <output>/dev_predictions.jsonl   one row per dev example
    <output>/preset/                 the fine-tuned task (`from_preset`)
    <output>/results.json            written last: the run is complete
"""

import json
import math
import os
import shutil
import sys
import time

import numpy as np

from keras_unilmv2.pretraining.checkpoints import RUN_SETTINGS_FILE
from keras_unilmv2.pretraining.callbacks import reseed_dropout as _reseed_dropout
from keras_unilmv2.pretraining.checkpoints import check_run_settings
from keras_unilmv2.pretraining.checkpoints import latest_valid_checkpoint
from keras_unilmv2.pretraining.checkpoints import list_checkpoints
from keras_unilmv2.pretraining.checkpoints import save_checkpoint
from keras_unilmv2.pretraining.checkpoints import write_json_atomically
from keras_unilmv2.utils.preset_utils import file_sha256

KINDS = ("classify", "qa", "seq2seq")
RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "dev_predictions.jsonl"
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


# === Argument checks ===


def _check_number(name, value, low=None, high=None, integer=False, low_open=False, high_open=False):
    kind = "an integer" if integer else "a number"
    ok = not isinstance(value, bool) and isinstance(value, (int,) if integer else (int, float))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low}")
        if high is not None:
            bounds.append(f"{'<' if high_open else '<='} {high}")
        raise ValueError(
            f"`{name}` must be {kind}{' ' + ' and '.join(bounds) if bounds else ''}. "
            f"Received: {name}={value!r}"
        )
    return value


def _check_file(name, path):
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise ValueError(f"`{name}` must be an existing file. Received: {name}={path!r}")
    return os.fspath(path)


def _progress_verbose():
    """Keras' progress bar on a terminal, one line per epoch otherwise."""
    return 1 if sys.stdout.isatty() else 2


# === Data: reading, permuting ===


def _take(data, order):
    """Rows `order` of nested tuples/dicts of lists or arrays."""
    if isinstance(data, dict):
        return {k: _take(v, order) for k, v in data.items()}
    if isinstance(data, tuple):
        return tuple(_take(v, order) for v in data)
    if isinstance(data, np.ndarray):
        return data[order]
    return [data[i] for i in order]


def _read(kind, path, split, task=None):
    """The examples of a data file, in the reader's own form."""
    from keras_unilmv2 import datasets

    if kind == "classify":
        return datasets.read_glue(task, path, split)
    if kind == "qa":
        return datasets.read_squad(path)
    sources, targets = datasets.read_seq2seq(path)
    return {"src": sources, "tgt": targets}


def _num_examples(kind, examples):
    if kind == "classify":
        return len(examples["text"])
    if kind == "qa":
        return len(examples)
    return len(examples["src"])


# === Tasks ===


def _load_task(kind, preset, settings):
    from keras_unilmv2 import datasets
    from keras_unilmv2.models.unilmv2_question_answerer import UniLMv2QuestionAnswerer
    from keras_unilmv2.models.unilmv2_seq2seq_lm import UniLMv2Seq2SeqLM
    from keras_unilmv2.models.unilmv2_text_classifier import UniLMv2TextClassifier

    if kind == "classify":
        spec = datasets.get_glue_task(settings["task"])
        return UniLMv2TextClassifier.from_preset(
            preset,
            num_classes=spec.num_classes,
            sequence_length=settings["max_source_length"],
        )
    if kind == "qa":
        return UniLMv2QuestionAnswerer.from_preset(
            preset,
            sequence_length=settings["max_source_length"],
            doc_stride=settings["doc_stride"],
        )
    return UniLMv2Seq2SeqLM.from_preset(
        preset,
        encoder_sequence_length=settings["max_source_length"],
        decoder_sequence_length=settings["max_target_length"],
        label_smoothing=settings["label_smoothing"],
        target_mask_rate=settings["target_mask_rate"],
    )


def _training_data(kind, task, examples):
    """`(x, y, rows)`: what `fit` takes, and the number of rows to permute."""
    from keras_unilmv2 import datasets

    if kind == "classify":
        x = examples["text"]
        if "text_pair" in examples:
            x = (examples["text"], examples["text_pair"])
        dtype = "float32" if isinstance(examples["label"][0], float) else "int32"
        return x, np.asarray(examples["label"], dtype=dtype), len(examples["text"])
    if kind == "qa":
        # Windowed once (in Python); the windows are permuted every epoch.
        x, y = task.preprocessor(*datasets.squad_fit_inputs(examples))
        return x, np.asarray(y), len(y)
    x = {"encoder_text": examples["src"], "decoder_text": examples["tgt"]}
    return x, None, len(examples["src"])


def beam_sampler(
    tokenizer,
    num_beams=1,
    length_penalty=0.0,
    min_length=0,
    no_repeat_ngram_size=0,
    ngram_ignore_tokens=(),
    return_all_beams=False,
):
    """A `UniLMv2BeamSampler` whose n-gram ignore tokens are given as
    strings (e.g. `["."]`, as s2s-ft's `--forbid_ignore_word`)."""
    from keras_unilmv2.samplers import UniLMv2BeamSampler

    ignore_ids = []
    vocabulary = tokenizer.get_vocabulary()
    for token in ngram_ignore_tokens:
        if token not in vocabulary:
            raise ValueError(
                f"`ngram_ignore_tokens` holds {token!r}, which is not a token of "
                "the vocabulary; give single tokens such as '.'."
            )
        ignore_ids.append(tokenizer.token_to_id(token))
    return UniLMv2BeamSampler(
        num_beams=num_beams,
        length_penalty=length_penalty,
        min_length=min_length,
        no_repeat_ngram_size=no_repeat_ngram_size,
        ngram_ignore_token_ids=ignore_ids or None,
        return_all_beams=return_all_beams,
    )


def generate_in_batches(seq2seq, sources, batch_size, max_length, log=print, return_scores=False):
    """`seq2seq.generate` over `sources` in batches, with progress output
    (a Keras progress bar on a terminal, else a line every ~10%)."""
    import keras

    texts, scores = [], []
    batches = math.ceil(len(sources) / batch_size)
    bar = keras.utils.Progbar(len(sources), unit_name="example") if sys.stdout.isatty() else None
    every = max(1, batches // 10)
    start = time.time()
    for b in range(batches):
        chunk = sources[b * batch_size : (b + 1) * batch_size]
        out = seq2seq.generate(chunk, max_length=max_length, return_scores=return_scores)
        if return_scores:
            out, chunk_scores = out
            scores.extend(np.asarray(chunk_scores).tolist())
        texts.extend(out)
        if bar is not None:
            bar.add(len(chunk))
        elif (b + 1) % every == 0 or b + 1 == batches:
            log(f"decoded {len(texts)}/{len(sources)} examples ({time.time() - start:.1f} s)")
    return (texts, scores) if return_scores else texts


# === Evaluation with the official metrics ===


def evaluate(kind, task, examples, settings, batch_size):
    """Scores `task` on dev `examples`.

    Returns `(metrics, predictions)`: the metric dict of
    `keras_unilmv2.metrics` for the kind of task, and one JSON-ready row
    per example.
    """
    from keras_unilmv2 import datasets
    from keras_unilmv2 import metrics

    if kind == "classify":
        spec = datasets.get_glue_task(settings["task"])
        x = examples["text"]
        if "text_pair" in examples:
            x = (examples["text"], examples["text_pair"])
        logits = np.asarray(task.predict(x, batch_size=batch_size, verbose=0))
        if spec.is_regression:
            predicted = logits[:, 0].astype("float64").tolist()
        else:
            predicted = logits.argmax(axis=-1).tolist()
        scores = metrics.glue_metrics(spec, predicted, examples["label"])
        rows = [
            {
                "index": index,
                "prediction": p if spec.is_regression else spec.label_names[p],
                "label": gold if spec.is_regression else spec.label_names[gold],
            }
            for index, p, gold in zip(examples["index"], predicted, examples["label"])
        ]
        return scores, rows
    if kind == "qa":
        (questions, contexts), _ = datasets.squad_fit_inputs(examples)
        answers = task.answer(
            questions,
            contexts,
            max_answer_length=settings["max_answer_length"],
            null_score_threshold=None,  # the best span; no-answer decided below
            batch_size=batch_size,
        )
        predictions, na_probs, rows = {}, {}, []
        for example, answer in zip(examples, answers):
            qid = example["id"]
            # The null-score difference (SQuAD 2.0 scripts' `na_prob`).
            na = float(answer["null_score"] - answer["score"]) if answer["text"] else math.inf
            text = answer["text"]
            if settings["version_2"] and na > 0.0:
                text = ""
            predictions[qid] = text
            na_probs[qid] = na if math.isfinite(na) else 1e9
            rows.append({"id": qid, "prediction": text, "null_score_diff": na_probs[qid]})
        if settings["version_2"]:
            scores = metrics.squad_v2_metrics(examples, predictions, na_probs=na_probs)
        else:
            scores = metrics.squad_v1_metrics(examples, predictions)
        return scores, rows
    generated = generate_in_batches(
        task, examples["src"], batch_size, settings["max_target_length"]
    )
    scores = metrics.rouge(generated, examples["tgt"], ROUGE_TYPES, sentence_split=True)
    scores = {k: 100.0 * v for k, v in scores.items()}
    rows = [{"prediction": g, "reference": t} for g, t in zip(generated, examples["tgt"])]
    return scores, rows


# === The run ===


def _validate(kind, settings):
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}. Received: kind={kind!r}")
    if settings["learning_rate"] is not None:
        _check_number("learning_rate", settings["learning_rate"], 0, low_open=True)
    _check_number("batch_size", settings["batch_size"], 1, integer=True)
    _check_number("epochs", settings["epochs"], 1, integer=True)
    _check_number("warmup_fraction", settings["warmup_fraction"], 0, 1, high_open=True)
    _check_number("seed", settings["seed"], 0, integer=True)
    _check_number("max_source_length", settings["max_source_length"], 3, integer=True)
    if kind == "classify":
        from keras_unilmv2 import datasets

        if settings["task"] is None:
            raise ValueError("`task` is required to fine-tune a classifier: a GLUE task name.")
        settings["task"] = datasets.get_glue_task(settings["task"]).name
    if kind == "qa":
        _check_number("doc_stride", settings["doc_stride"], 1, integer=True)
        _check_number("max_answer_length", settings["max_answer_length"], 1, integer=True)
    if kind == "seq2seq":
        _check_number("max_target_length", settings["max_target_length"], 2, integer=True)
        _check_number("label_smoothing", settings["label_smoothing"], 0, 1, high_open=True)
        _check_number("target_mask_rate", settings["target_mask_rate"], 0, 1)


def finetune(
    kind,
    preset,
    train_file,
    dev_file,
    output_dir,
    task=None,
    version_2=False,
    learning_rate=None,
    batch_size=32,
    epochs=3,
    warmup_fraction=0.1,
    max_source_length=128,
    max_target_length=48,
    label_smoothing=0.1,
    target_mask_rate=0.5,
    doc_stride=128,
    max_answer_length=30,
    seed=0,
    stop_after_epochs=None,
    command=None,
    log=print,
):
    """Fine-tunes `preset` on a data file, resumably, and scores it.

    Args:
        kind: `"classify"` (GLUE TSV files; `task` names the GLUE task),
            `"qa"` (SQuAD JSON; `version_2` for SQuAD 2.0 scoring with
            no-answer) or `"seq2seq"` (s2s-ft JSONL or `.src`/`.tgt`).
        preset: a preset name or directory (a backbone-only preset gets a
            new head).
        train_file, dev_file: the data files.
        output_dir: where checkpoints, predictions, the preset and
            `results.json` go (see the module docstring).
        learning_rate, batch_size, epochs, warmup_fraction: AdamW (weight
            decay 0.01, clipnorm 1.0) with a linear warm-up over
            `warmup_fraction` of all steps and a linear decay to 0.
            `learning_rate=None` takes the tasks' default peak rate for the
            backbone's width (`models.fine_tuning.default_learning_rate`).
        max_source_length: the sequence length (classify, qa) or the
            source length (seq2seq), special tokens included.
        max_target_length, label_smoothing, target_mask_rate: seq2seq only.
        doc_stride, max_answer_length: qa only.
        seed: data order, head initialization, dropout and target noise.
        stop_after_epochs: stop (as an interruption) after this many
            epochs of this call; `0` stops once the data and the model are
            loaded and the settings recorded.
        command: the command line, recorded in `results.json`.
        log: a function printing a line.

    Returns:
        The `results.json` dict, or `None` when `stop_after_epochs` stopped
        the run early.

    Example:
    ```python
    from keras_unilmv2.recipes import finetune
    results = finetune(
        "classify", "unilmv2_tiny_en_uncased", "glue/RTE/train.tsv",
        "glue/RTE/dev.tsv", "runs/rte", task="rte", learning_rate=2e-5,
        batch_size=32, epochs=3, max_source_length=128)
    results["dev"]  # {"accuracy": ...}
    ```
    """
    import keras

    from keras_unilmv2.models.fine_tuning import default_learning_rate
    from keras_unilmv2.models.fine_tuning import default_optimizer
    from keras_unilmv2.models.task_variables import restore_checkpoint

    settings = {
        "kind": kind,
        "preset": os.fspath(preset) if isinstance(preset, os.PathLike) else preset,
        "task": task,
        "version_2": bool(version_2),
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "epochs": epochs,
        "warmup_fraction": warmup_fraction,
        "max_source_length": max_source_length,
        "seed": seed,
    }
    if kind == "qa":
        settings.update(doc_stride=doc_stride, max_answer_length=max_answer_length)
    if kind == "seq2seq":
        settings.update(
            max_target_length=max_target_length,
            label_smoothing=label_smoothing,
            target_mask_rate=target_mask_rate,
        )
    _validate(kind, settings)
    if kind != "classify" and task is not None:
        raise ValueError(f"`task` is for `classify` runs only. Received: task={task!r} for {kind!r}")
    if kind != "qa" and version_2:
        raise ValueError(f"`version_2` is for `qa` runs only. Received: version_2=True for {kind!r}")
    if stop_after_epochs is not None:
        _check_number("stop_after_epochs", stop_after_epochs, 0, integer=True)
    train_file = _check_file("train_file", train_file)
    dev_file = _check_file("dev_file", dev_file)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"`output_dir` must be a directory. Received: output_dir={output_dir!r} (a file)")
    settings.update(
        train_file=os.path.abspath(train_file),
        train_sha256=file_sha256(train_file),
        dev_file=os.path.abspath(dev_file),
        dev_sha256=file_sha256(dev_file),
    )

    work_dir = os.path.join(output_dir, "training")
    backup_dir = os.path.join(work_dir, "checkpoints")
    results_path = os.path.join(output_dir, RESULTS_FILE)
    if os.path.exists(os.path.join(backup_dir, RUN_SETTINGS_FILE)):
        # Raises (naming every difference) before anything is loaded.
        check_run_settings(backup_dir, settings)
    if os.path.exists(results_path):
        with open(results_path, encoding="utf-8") as f:
            results = json.load(f)
        log(f"{output_dir!r} holds a finished run with these settings: nothing to do.")
        return results

    train = _read(kind, train_file, "train", settings.get("task"))
    dev = _read(kind, dev_file, "dev", settings.get("task"))
    for name, examples in (("train_file", train), ("dev_file", dev)):
        if _num_examples(kind, examples) == 0:
            raise ValueError(f"`{name}` holds no examples. Received: {name}={settings[name]!r}")
    log(f"{_num_examples(kind, train)} training and {_num_examples(kind, dev)} dev examples")

    keras.utils.set_random_seed(seed)
    model = _load_task(kind, preset, settings)
    x, y, rows = _training_data(kind, model, train)
    steps_per_epoch = math.ceil(rows / batch_size)
    total_steps = epochs * steps_per_epoch
    compile_kwargs = {}
    if kind == "seq2seq":
        compile_kwargs["sampler"] = beam_sampler(model.preprocessor.tokenizer, num_beams=1)
    if learning_rate is None:  # the tasks' default: by the backbone's width
        learning_rate = model.learning_rate_scale * default_learning_rate(
            model.backbone.hidden_dim
        )
    model.compile(
        optimizer=default_optimizer(learning_rate, warmup_fraction, total_steps=total_steps),
        **compile_kwargs,
    )

    # Recorded once the data and the model are known to load: a run that
    # failed before this point can be rerun with other settings.
    check_run_settings(backup_dir, settings)
    if stop_after_epochs == 0:
        return None
    done, restore_from = latest_valid_checkpoint(backup_dir, log)
    history_path = os.path.join(work_dir, "history.json")
    history = []
    if os.path.exists(history_path):
        with open(history_path, encoding="utf-8") as f:
            history = [row for row in json.load(f) if row["epoch"] <= done]
    if restore_from is not None:
        restore_checkpoint(model, restore_from)
        log(f"resuming after epoch {done} of {epochs} from {restore_from}")
    reseed = _reseed_dropout(keras, seed)
    started = 0
    for epoch in range(done, epochs):
        if stop_after_epochs is not None and started >= stop_after_epochs:
            log(f"stopped after epoch {epoch}; run the same command again to resume")
            return None
        order = np.random.default_rng([seed, epoch]).permutation(rows)
        if kind == "seq2seq":
            # Fresh, reproducible target noise every epoch.
            model.preprocessor.seed = seed * 1000 + epoch
        fit = model.fit(
            _take(x, order),
            None if y is None else y[order],
            batch_size=batch_size,
            epochs=epoch + 1,
            initial_epoch=epoch,
            shuffle=False,
            callbacks=[reseed],
            verbose=_progress_verbose(),
        )
        save_checkpoint(model, backup_dir, epoch + 1)
        history.append(
            {"epoch": epoch + 1, **{k: float(v[-1]) for k, v in fit.history.items()}}
        )
        write_json_atomically(history_path, history)
        started += 1
    if kind == "seq2seq":
        model.preprocessor.seed = None

    log("scoring the dev file")
    scores, predictions = evaluate(kind, model, dev, settings, batch_size)
    predictions_path = os.path.join(output_dir, PREDICTIONS_FILE)
    tmp = predictions_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for row in predictions:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, predictions_path)

    # Written aside, then renamed into place.
    export_dir = os.path.join(work_dir, "export")
    preset_dir = os.path.join(output_dir, "preset")
    if os.path.exists(export_dir):
        shutil.rmtree(export_dir)
    # The task's default compile state: the preset gets no optimizer
    # state (which would triple its size).
    model.compile()
    model.save_to_preset(export_dir)
    if os.path.exists(preset_dir):
        shutil.rmtree(preset_dir)
    os.replace(export_dir, preset_dir)
    results = {
        "kind": kind,
        "dev": scores,
        "dev_examples": _num_examples(kind, dev),
        "train_examples": _num_examples(kind, train),
        "steps": total_steps,
        "history": history,
        "preset": preset_dir,
        "predictions": predictions_path,
        "settings": settings,
        "command": command,
    }
    write_json_atomically(results_path, results)
    # Complete: the checkpoints (weights and optimizer state) are no longer
    # needed; `run.json` stays to refuse a rerun with other settings.
    for _, weights, record in list_checkpoints(backup_dir):
        os.remove(record)
        if os.path.exists(weights):
            os.remove(weights)
    return results


def decode(
    preset,
    input_file,
    output_file,
    num_beams=5,
    length_penalty=0.0,
    min_length=0,
    max_length=None,
    no_repeat_ngram_size=0,
    ngram_ignore_tokens=(),
    nbest=None,
    batch_size=32,
    max_source_length=None,
    references=None,
    log=print,
):
    """Decodes a s2s file with beam search and writes the outputs.

    Args:
        preset: a fine-tuned `UniLMv2Seq2SeqLM` preset (name or directory).
        input_file: JSONL with a `"src"` per line, or a `.src` file.
        output_file: one decoded text per line; with `nbest`, JSONL rows
            `{"src": ..., "beams": [{"text": ..., "score": ...}, ...]}`,
            best first (`score` as `UniLMv2Seq2SeqLM.generate` returns it:
            summed log-probability, over the GNMT length penalty when
            `length_penalty > 0`).
        num_beams, length_penalty, min_length, no_repeat_ngram_size,
            ngram_ignore_tokens: `UniLMv2BeamSampler` settings (ignore
            tokens as strings, e.g. `["."]`).
        max_length: target slots (with the end token); defaults to the
            preset's `decoder_sequence_length`.
        nbest: int in `[1, num_beams]`, or `None` for plain text output.
        batch_size: examples per `generate` call.
        max_source_length: source length (with `[CLS]`/`[SEP]`); defaults
            to the preset's.
        references: optional references (a `.tgt` file, or JSONL with
            `"tgt"`) to score the output with ROUGE (F1, percent).

    Returns:
        A dict: `examples`, `output_file`, `seconds` and, with references,
        `rouge`.

    Example:
    ```python
    from keras_unilmv2.recipes import decode
    decode("runs/xsum/preset", "xsum/test.src", "runs/xsum/test.out",
           num_beams=8, length_penalty=0.9, no_repeat_ngram_size=3,
           ngram_ignore_tokens=["."], min_length=1, references="xsum/test.tgt")
    ```
    """
    from keras_unilmv2 import datasets
    from keras_unilmv2 import metrics
    from keras_unilmv2.models.unilmv2_seq2seq_lm import UniLMv2Seq2SeqLM

    _check_number("num_beams", num_beams, 1, integer=True)
    _check_number("length_penalty", length_penalty, 0)
    _check_number("min_length", min_length, 0, integer=True)
    _check_number("no_repeat_ngram_size", no_repeat_ngram_size, 0, integer=True)
    _check_number("batch_size", batch_size, 1, integer=True)
    if max_length is not None:
        _check_number("max_length", max_length, 2, integer=True)
        if min_length >= max_length:
            raise ValueError(
                f"`min_length` ({min_length}) must be less than `max_length` "
                f"({max_length}): the end token needs a slot."
            )
    if max_source_length is not None:
        _check_number("max_source_length", max_source_length, 3, integer=True)
    if nbest is not None:
        _check_number("nbest", nbest, 1, num_beams, integer=True)
    if isinstance(ngram_ignore_tokens, str):
        raise TypeError(
            "`ngram_ignore_tokens` must be a list of token strings. Received: "
            f"ngram_ignore_tokens={ngram_ignore_tokens!r}"
        )
    input_file = _check_file("input_file", input_file)
    sources, _ = datasets.read_seq2seq(input_file, with_target=False)
    if not sources:
        raise ValueError(f"`input_file` holds no sources. Received: input_file={input_file!r}")
    targets = None
    if references is not None:
        references = _check_file("references", references)
        if references.endswith(".tgt"):
            with open(references, encoding="utf-8") as f:
                targets = [line.rstrip("\n").rstrip("\r") for line in f]
        else:
            _, targets = datasets.read_seq2seq(references)
        if len(targets) != len(sources):
            raise ValueError(
                f"`references` has {len(targets)} examples but `input_file` has "
                f"{len(sources)}; they must be aligned."
            )
    directory = os.path.dirname(os.path.abspath(output_file))
    if not os.path.isdir(directory):
        raise ValueError(
            f"The folder of `output_file` does not exist. Received: output_file={output_file!r}"
        )

    kwargs = {}
    if max_source_length is not None:
        kwargs["encoder_sequence_length"] = max_source_length
    if max_length is not None:
        kwargs["decoder_sequence_length"] = max_length
    seq2seq = UniLMv2Seq2SeqLM.from_preset(preset, **kwargs)
    if min_length >= seq2seq.preprocessor.decoder_sequence_length:
        raise ValueError(
            f"`min_length` ({min_length}) must be less than the target length "
            f"({seq2seq.preprocessor.decoder_sequence_length}): the end token needs a slot."
        )
    seq2seq.compile(
        sampler=beam_sampler(
            seq2seq.preprocessor.tokenizer,
            num_beams=num_beams,
            length_penalty=length_penalty,
            min_length=min_length,
            no_repeat_ngram_size=no_repeat_ngram_size,
            ngram_ignore_tokens=ngram_ignore_tokens,
            return_all_beams=nbest is not None,
        )
    )
    start = time.time()
    texts, scores = generate_in_batches(
        seq2seq, sources, batch_size, max_length, log=log, return_scores=True
    )
    seconds = time.time() - start
    tmp = output_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for source, text, score in zip(sources, texts, scores):
            if nbest is None:
                f.write(" ".join(text.split()) + "\n")
            else:
                beams = [{"text": t, "score": float(s)} for t, s in zip(text[:nbest], score[:nbest])]
                f.write(json.dumps({"src": source, "beams": beams}, ensure_ascii=False) + "\n")
    os.replace(tmp, output_file)
    result = {"examples": len(sources), "output_file": output_file, "seconds": round(seconds, 2)}
    if targets is not None:
        best = [t[0] for t in texts] if nbest is not None else texts
        rouge = metrics.rouge(best, targets, ROUGE_TYPES, sentence_split=True)
        result["rouge"] = {k: 100.0 * v for k, v in rouge.items()}
    return result
