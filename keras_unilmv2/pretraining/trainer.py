"""`pretrain()`: PMLM pre-training from plain text to a preset.

`tools/pretrain_pmlm.py` is the command line over it. The options are the
fields of `PretrainSettings` (checked when it is made, before anything is
read or written); `pretrain(inputs, output_dir, **options)` builds one.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import sys
from typing import Optional

from keras_unilmv2.pretraining import callbacks as callbacks_lib
from keras_unilmv2.pretraining.checkpoints import check_run_settings
from keras_unilmv2.pretraining.checkpoints import latest_valid_checkpoint
from keras_unilmv2.pretraining.checkpoints import publish_preset
from keras_unilmv2.pretraining.checkpoints import truncate_history
from keras_unilmv2.pretraining.checkpoints import write_json_atomically
from keras_unilmv2.pretraining.data import evaluation_dataset
from keras_unilmv2.pretraining.data import read_texts
from keras_unilmv2.pretraining.data import split_heldout
from keras_unilmv2.pretraining.data import streaming_corpus
from keras_unilmv2.pretraining.data import streaming_files
from keras_unilmv2.pretraining.data import training_dataset
from keras_unilmv2.pretraining import distributed
from keras_unilmv2.pretraining.distributed import make_distribution
from keras_unilmv2.pretraining.model import MIXED_PRECISION
from keras_unilmv2.pretraining.model import build_pretraining_model
from keras_unilmv2.pretraining.model import pretraining_preprocessor
from keras_unilmv2.pretraining.streaming import streaming_dataset


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


# Settings added to `run.json` after its first version, with the value

@dataclasses.dataclass
class PretrainSettings:
    """Every option of a pre-training run (`pretrain()`'s keyword arguments).

    Made by `pretrain()`; the options are checked on creation (a
    `ValueError` naming the option and the `tools/pretrain_pmlm.py` flag),
    before anything is read or written. See `tools/pretrain_pmlm.py --help`
    for their meaning. `init_from` is kept as an absolute path, so a rerun
    from another working directory (or with the same preset spelled
    otherwise) resumes. `coordinator_address`, `num_processes` and
    `process_id` make a multi-process run (JAX, PyTorch or TensorFlow;
    see `keras_unilmv2.pretraining.distributed`): `batch_size` is then the
    global batch, split evenly over the processes, and the run is
    data-parallel unless `model_parallel` is given (JAX only). `dropout`
    is the backbone's (PyTorch and TensorFlow processes draw their masks
    apart: 0 makes a multi-process run equal a one-process run).

    Example:
    ```python
    settings = PretrainSettings(["corpus/"], "my_preset", steps=2000,
                                gradient_accumulation_steps=4)
    settings.policy  # None: float32
    settings.masking["mask_rate"]  # 0.15
    ```
    """

    inputs: list
    output_dir: str
    vocabulary: Optional[str] = None
    vocabulary_size: int = 8192
    num_layers: int = 4
    num_heads: int = 4
    hidden_dim: int = 256
    intermediate_dim: int = 1024
    max_sequence_length: int = 512
    sequence_length: int = 128
    batch_size: int = 32
    steps: int = 1000
    warmup_steps: int = 100
    learning_rate: float = 5e-4
    checkpoint_every: int = 100
    heldout_every: int = 50
    seed: int = 0
    dropout: float = 0.1
    data_parallel: bool = False
    model_parallel: Optional[str] = None
    stop_after_checkpoints: Optional[int] = None
    init_from: Optional[str] = None
    command: Optional[str] = None
    mixed_precision: Optional[str] = None
    gradient_accumulation_steps: int = 1
    cased: bool = False
    mask_rate: float = 0.15
    span_probability: float = 0.4
    min_span_length: int = 2
    max_span_length: int = 6
    mask_token_replacement_rates: Optional[tuple] = None
    streaming: bool = False
    vocab_sample_lines: int = 100_000
    heldout_file: Optional[str] = None
    heldout_lines: int = 1000
    shuffle_buffer: int = 10_000
    coordinator_address: Optional[str] = None
    num_processes: int = 1
    process_id: int = 0

    def __post_init__(self):
        self.policy, self.mask_token_replacement_rates = _check_options(
            self.mixed_precision,
            self.gradient_accumulation_steps,
            self.cased,
            self.mask_rate,
            self.span_probability,
            self.min_span_length,
            self.max_span_length,
            self.mask_token_replacement_rates,
            self.sequence_length,
            self.streaming,
            self.vocab_sample_lines,
            self.heldout_lines,
            self.heldout_file,
            self.shuffle_buffer,
        )
        self.coordinator_address, self.num_processes, self.process_id = (
            distributed.check_process_options(
                self.coordinator_address, self.num_processes, self.process_id
            )
        )
        from keras_unilmv2.utils.checks import check_rate

        self.dropout = check_rate("dropout (--dropout)", self.dropout, 0, 1, open_high=True)
        if self.batch_size % self.num_processes:
            raise ValueError(
                f"`batch_size` (--batch-size) must be divisible by `num_processes` "
                f"(--num-processes {self.num_processes}): each process reads an equal "
                f"share of every batch. Received: batch_size={self.batch_size!r}"
            )
        if self.num_processes > 1 and self.gradient_accumulation_steps > 1:
            import keras

            if keras.backend.backend() == "tensorflow":
                # Keras 3.15 accumulates in a `cond` whose branches sync the
                # replicas (`merge_call`), which `tf.distribute` refuses.
                raise ValueError(
                    "`gradient_accumulation_steps` (--gradient-accumulation-steps) > 1 "
                    "does not work with several TensorFlow processes "
                    "(`MultiWorkerMirroredStrategy`; Keras 3.15's optimizer "
                    "accumulates in a `cond` that syncs the workers). Use a larger "
                    "--batch-size, or JAX or PyTorch. Received: "
                    f"gradient_accumulation_steps={self.gradient_accumulation_steps}, "
                    f"num_processes={self.num_processes}"
                )
        if self.num_processes > 1 and not (self.data_parallel or self.model_parallel):
            self.data_parallel = True  # One model, data-parallel over the processes.
        if self.init_from is not None:
            self.init_from = os.path.abspath(os.path.expanduser(os.fspath(self.init_from)))

    @property
    def lowercase(self):
        return not self.cased

    @property
    def masking(self):
        """The `UniLMv2PMLMPreprocessor` masking arguments."""
        return dict(
            mask_rate=self.mask_rate,
            span_probability=self.span_probability,
            min_span_length=self.min_span_length,
            max_span_length=self.max_span_length,
            mask_token_replacement_rates=self.mask_token_replacement_rates,
        )


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
    "dropout": 0.1,
}




def pretrain(inputs, output_dir, log=print, **options):
    """Pre-trains a UniLMv2 model with PMLM and writes a preset directory.

    `options` are the fields of `PretrainSettings` (see
    `tools/pretrain_pmlm.py --help`); an unknown one is a `TypeError`.
    Returns the metadata dict written to `<output_dir>/metadata.json` (or
    None when `stop_after_checkpoints` interrupted the run).

    Steps count optimizer updates: `steps`, `warmup_steps` and
    `checkpoint_every` are updates, each of `gradient_accumulation_steps`
    batches of `batch_size` sequences (the effective batch is their
    product; the data read is `steps * gradient_accumulation_steps`
    batches).

    With `streaming=True` the training documents (one a line) are read from
    the files as they are consumed (`keras_unilmv2.pretraining.streaming`);
    the vocabulary is `vocabulary` or built from `vocab_sample_lines` lines;
    the held-out documents are `heldout_file`'s lines or the first
    `heldout_lines` lines, dropped from the training stream.

    Example:
    ```python
    pretrain(["corpus/"], "my_preset", steps=2000, batch_size=32,
             gradient_accumulation_steps=4, mixed_precision="bfloat16")
    ```
    """
    import keras

    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(PretrainSettings)})
    if unknown:
        raise TypeError(
            f"`pretrain()` got unknown options {unknown}; the options are the "
            "fields of `PretrainSettings`."
        )
    # Before anything runs on the backend (the option checks do).
    distributed.initialize_processes(
        *distributed.check_process_options(
            options.get("coordinator_address"),
            options.get("num_processes", 1),
            options.get("process_id", 0),
        )
    )
    settings = PretrainSettings(inputs, output_dir, **options)
    if not distributed.is_chief():
        log = _quiet
    try:
        return _pretrain(keras, settings, log)
    finally:
        if settings.data_parallel or settings.model_parallel:
            keras.distribution.set_distribution(None)


def _quiet(*args, **kwargs):
    """The log of processes other than the chief."""


def _pretrain(keras, s, log):
    """`pretrain()` with its checked settings `s`."""
    from keras_unilmv2.models.unilmv2_tokenizer import UniLMv2Tokenizer
    from keras_unilmv2.utils.preset_utils import file_sha256
    from keras_unilmv2.utils.vocabulary import build_wordpiece_vocabulary

    accumulation = s.gradient_accumulation_steps
    lowercase = s.lowercase
    streaming = s.streaming
    masking = s.masking
    if s.steps % s.checkpoint_every:
        raise ValueError(
            f"`s.steps` ({s.steps}) must be a multiple of `s.checkpoint_every` ({s.checkpoint_every})."
        )
    if s.sequence_length > s.max_sequence_length:
        # The PMLM layout gives its slots positions 0..sequence_length-1
        # (pseudo masks reuse their token's position).
        raise ValueError(
            f"`s.sequence_length` (--sequence-length {s.sequence_length}) exceeds the "
            f"position table (--max-sequence-length {s.max_sequence_length}): the "
            f"PMLM layout uses positions 0..{s.sequence_length - 1}. Use a "
            f"sequence length of at most {s.max_sequence_length} or a larger table."
        )
    os.makedirs(s.output_dir, exist_ok=True)
    if os.path.exists(os.path.join(s.output_dir, "model.weights.h5")):
        raise ValueError(
            f"{s.output_dir!r} already holds a finished preset; refusing to overwrite it."
        )
    work_dir = os.path.join(s.output_dir, "training")
    os.makedirs(work_dir, exist_ok=True)
    keras.utils.set_random_seed(s.seed)

    if streaming:
        files = streaming_files(s.inputs)
        heldout_texts, vocab_texts = streaming_corpus(
            files, s.heldout_file, s.heldout_lines,
            s.vocab_sample_lines,
        )
        train_texts = texts = None
        log(
            f"streaming {len(files)} files; {len(heldout_texts)} held-out documents"
            + ("" if s.heldout_file else f" (the first {len(heldout_texts)} lines)")
        )
        corpus_settings = {
            "corpus_files": [[f, os.path.getsize(f)] for f in files],
            "heldout_documents": len(heldout_texts),
            "heldout_sha256": hashlib.sha256(
                "\n".join(heldout_texts).encode("utf-8")
            ).hexdigest(),
            "shuffle_buffer": s.shuffle_buffer,
        }
        if s.vocabulary is None:
            corpus_settings["vocab_sample_lines"] = s.vocab_sample_lines
    else:
        files = None
        texts = read_texts(s.inputs)
        train_texts, heldout_texts = split_heldout(texts, s.heldout_every)
        vocab_texts = train_texts
        log(f"{len(train_texts)} training and {len(heldout_texts)} held-out documents")
        corpus_settings = {
            "corpus_documents": len(texts),
            "corpus_sha256": hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest(),
            "heldout_every": s.heldout_every,
        }

    chief = distributed.is_chief()
    multi_process = distributed.process_count() > 1
    if multi_process and len(heldout_texts) < s.batch_size:
        # Several processes evaluate full global batches only.
        raise ValueError(
            f"A run of {distributed.process_count()} processes evaluates the held-out "
            f"documents in full batches of `batch_size` (--batch-size {s.batch_size}), "
            f"but there are only {len(heldout_texts)} held-out documents. Hold out more "
            "(--heldout-every, --heldout-lines or --heldout-file) or use a smaller batch."
        )
    vocab_path = os.path.join(work_dir, "vocabulary.txt")
    # Written to a temporary file and renamed: never a truncated vocabulary.
    vocab_tmp = vocab_path + ".tmp"
    if not chief:
        pass  # The chief writes the vocabulary (see the barrier below).
    elif s.vocabulary is None and not os.path.exists(vocab_path):
        log(
            f"building a WordPiece s.vocabulary of up to {s.vocabulary_size} tokens"
            f" from {len(vocab_texts)} documents" + ("" if lowercase else " (cased)")
        )
        build_wordpiece_vocabulary(
            vocab_texts, s.vocabulary_size, lowercase=lowercase, output_file=vocab_tmp
        )
        os.replace(vocab_tmp, vocab_path)
    elif s.vocabulary is not None:
        if not os.path.isfile(s.vocabulary):
            raise ValueError(f"`--vocab` file does not exist: {s.vocabulary!r}")
        with open(s.vocabulary, encoding="utf-8") as f, open(vocab_tmp, "w", encoding="utf-8") as g:
            g.write(f.read())
        os.replace(vocab_tmp, vocab_path)
    distributed.barrier("vocabulary")
    tokenizer = UniLMv2Tokenizer(vocabulary=vocab_path, lowercase=lowercase)

    backup_dir = os.path.join(work_dir, "checkpoints")
    settings = {
        "vocabulary_size": tokenizer.vocabulary_size(),
        "vocabulary_sha256": file_sha256(vocab_path),
        **corpus_settings,
        "num_layers": s.num_layers,
        "num_heads": s.num_heads,
        "hidden_dim": s.hidden_dim,
        "intermediate_dim": s.intermediate_dim,
        "max_sequence_length": s.max_sequence_length,
        "sequence_length": s.sequence_length,
        "batch_size": s.batch_size,
        "steps": s.steps,
        "warmup_steps": s.warmup_steps,
        "learning_rate": s.learning_rate,
        "checkpoint_every": s.checkpoint_every,
        "seed": s.seed,
        "dropout": s.dropout,
        "init_from": None if s.init_from is None else os.fspath(s.init_from),
        "mixed_precision": s.policy,
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
    check_run_settings(
        backup_dir, settings, defaults=_NEW_SETTING_DEFAULTS, paths=("init_from",),
        write=chief,
    )

    def make_preprocessor(preprocessor_seed):
        return pretraining_preprocessor(tokenizer, s.sequence_length, preprocessor_seed, **masking)

    distribution = None
    if s.data_parallel or s.model_parallel:
        distribution = make_distribution(keras, s.model_parallel)  # None: PyTorch/TF processes
    if distribution is not None:
        keras.distribution.set_distribution(distribution)
    # Several TensorFlow processes: the model's variables are mirrored over them.
    with distributed.scope():
        backbone, pmlm = build_pretraining_model(
            tokenizer.vocabulary_size(),
            num_layers=s.num_layers,
            num_heads=s.num_heads,
            hidden_dim=s.hidden_dim,
            intermediate_dim=s.intermediate_dim,
            max_sequence_length=s.max_sequence_length,
            steps=s.steps,
            warmup_steps=s.warmup_steps,
            learning_rate=s.learning_rate,
            gradient_accumulation_steps=accumulation,
            mixed_precision=s.policy,
            init_from=s.init_from,
            dropout=s.dropout,
        )

    eval_pre = make_preprocessor(10_000 + s.seed)
    # Several processes split every batch: the held-out set is evaluated
    # in full batches only (the last partial one is dropped).
    heldout = distributed.shard_batches(
        evaluation_dataset(heldout_texts, eval_pre, s.batch_size, drop_remainder=multi_process),
        s.batch_size,
    )
    # Several PyTorch or TensorFlow processes: losses, gradients and
    # figures combined over them (JAX: by the distribution).
    distributed.prepare_model(pmlm, heldout.element_spec)
    heldout = distributed.distribute(heldout)
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
        if chief:
            write_json_atomically(state_path, {k: float(v) for k, v in untrained.items()})

    done_epochs, restore_from = latest_valid_checkpoint(backup_dir, log)
    history_path = os.path.join(work_dir, "history.csv")
    if chief:
        truncate_history(history_path, done_epochs * s.checkpoint_every)
    if restore_from is not None:
        log(f"resuming after step {done_epochs * s.checkpoint_every} from {restore_from}")
    epochs = s.steps // s.checkpoint_every
    # Keras counts batches: an update every `accumulation` of them.
    batches_per_epoch = s.checkpoint_every * accumulation
    consumed = done_epochs * batches_per_epoch
    if streaming:
        data = streaming_dataset(
            files,
            tokenizer,
            s.sequence_length,
            s.batch_size,
            s.seed,
            shuffle_buffer=s.shuffle_buffer,
            preprocessor=make_preprocessor(s.seed),
            skip_batches=consumed,
            exclude_lines=heldout_texts,
        )
    else:
        data = training_dataset(
            train_texts,
            make_preprocessor,
            s.batch_size,
            s.steps * accumulation,
            s.seed,
            skip_batches=consumed,
        )
    data = distributed.distribute(distributed.shard_batches(data, s.batch_size))
    checkpointer = callbacks_lib.checkpointer(keras, backup_dir, restore_from, done_epochs)
    throughput = callbacks_lib.throughput(
        keras, s.checkpoint_every, batches_per_epoch, s.batch_size * s.sequence_length, s.steps, log
    )
    callbacks = [
        # The log row first: a run killed between the two rewrites the row
        # (rows after the checkpoint it resumes from are dropped).
        callbacks_lib.step_logger(keras, history_path, s.checkpoint_every),
        checkpointer,
        callbacks_lib.reseed_dropout(keras, s.seed),
        throughput,
    ]
    if not chief:  # Process 0 alone writes the history.
        callbacks.pop(0)
    if s.stop_after_checkpoints:
        callbacks.append(callbacks_lib.stop_after(keras, s.stop_after_checkpoints))
    if done_epochs < epochs:
        pmlm.fit(
            data,
            epochs=epochs,
            initial_epoch=done_epochs,
            steps_per_epoch=batches_per_epoch,
            callbacks=callbacks,
            verbose=(1 if sys.stdout.isatty() else 2) if chief else 0,
        )
    else:  # Trained to the end; the export had not finished.
        checkpointer.set_model(pmlm)
        checkpointer.on_train_begin()
    if checkpointer.last_epoch < epochs:
        log("stopped before the last step; run the same command again to resume")
        return None

    trained = pmlm.evaluate(heldout, verbose=0, return_dict=True)
    with distributed.gathered_variables(pmlm):
        # Every process takes part in gathering sharded weights; the chief
        # alone writes the preset.
        if not chief:
            return None
        return _export(s, backbone, tokenizer, settings, files, texts, train_texts,
                       heldout_texts, untrained, trained, throughput, history_path, work_dir)


def _export(s, backbone, tokenizer, settings, files, texts, train_texts, heldout_texts,
            untrained, trained, throughput, history_path, work_dir):
    """Writes the preset of a finished run (the chief process)."""
    from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone

    callbacks_lib.plot_history(history_path, os.path.join(work_dir, "curves.png"))
    # The preset is written aside and moved in, weights last (see
    # `publish_preset`): a run killed while exporting exports again.
    export_dir = os.path.join(work_dir, "export")
    if os.path.exists(export_dir):
        shutil.rmtree(export_dir)
    if s.policy is not None:
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
    if s.streaming:
        corpus = {
            "inputs": [os.fspath(p) for p in s.inputs],
            "streaming": True,
            "files": len(files),
            "heldout_documents": len(heldout_texts),
            "heldout_rule": (
                f"the lines of {os.fspath(s.heldout_file)}"
                if s.heldout_file
                else f"the first {len(heldout_texts)} lines"
            )
            + " (dropped from the training stream)",
        }
        if s.vocabulary is None:
            corpus["vocabulary_sample_lines"] = s.vocab_sample_lines
    else:
        corpus = {
            "inputs": [os.fspath(p) for p in s.inputs],
            "documents": len(texts),
            "training_documents": len(train_texts),
            "heldout_documents": len(heldout_texts),
            "heldout_rule": f"every {s.heldout_every}th document",
        }
    metadata.update(
        {
            "description": "UniLMv2 pre-trained here with PMLM (AE + PAR) by tools/pretrain_pmlm.py",
            "command": s.command,
            "corpus": corpus,
            "training": {
                "steps": s.steps,
                "batch_size": s.batch_size,
                "gradient_accumulation_steps": s.gradient_accumulation_steps,
                "effective_batch_size": s.batch_size * s.gradient_accumulation_steps,
                "sequence_length": s.sequence_length,
                "peak_learning_rate": s.learning_rate,
                "warmup_steps": s.warmup_steps,
                "seed": s.seed,
                "dropout": s.dropout,
                "init_from": None if s.init_from is None else os.fspath(s.init_from),
                "mixed_precision": s.policy,
                "lowercase": s.lowercase,
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
    if s.init_from is not None:
        _record_previous_stages(metadata, s.init_from)
    write_json_atomically(metadata_path, metadata)
    publish_preset(export_dir, s.output_dir)
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

