"""UniLMv2 presets: name resolution, safe saving and checked loading.

A name resolves, in order, to: a preset shipped in this repository's
`presets/` folder, then a converted copy in the user's preset home
(`$KERAS_UNILMV2_HOME`, default `~/.keras/keras_unilmv2`). Anything that is
not a registered name (a local directory, `hf://`, `kaggle://`) goes to
keras-hub's loader unchanged.

`PresetMixin` (on every UniLMv2 backbone, tokenizer, preprocessor and task)
adds the reliability checks around keras-hub's preset code:

- `save_to_preset(dir, overwrite=False)` refuses a directory that holds
  files it did not write in this process (another preset, or anything
  else) unless `overwrite=True`, and records the sha256 of the weights
  files in `metadata.json` (`"weights_sha256"`).
- `from_preset` reports an unreadable (e.g. truncated) `config.json`,
  `tokenizer.json`, `task.json`, `preprocessor.json` or `metadata.json` and
  a missing `model.weights.h5` by path, verifies the recorded checksums,
  and checks that the tokenizer's vocabulary fits the backbone's
  `vocabulary_size` and the preprocessor's layout its position table.
- `load_weights` compares the file's tensors with the model's variables
  first: a shape difference names the variable and both shapes, and
  weights the model has no variable for (e.g. a config with fewer layers
  than the weights) are an error instead of being ignored.
"""

import contextlib
import hashlib
import json
import os
import pathlib
import re



# Released presets (name -> metadata, config and source), registered by
# `keras_unilmv2.models` so that this module never imports the models.
_REGISTERED_PRESETS = {}


def register_presets(presets):
    """Registers released presets: a dict of name -> `{"metadata", "config",
    "source"}` (see `keras_unilmv2/models/unilmv2_presets.py`)."""
    if not isinstance(presets, dict):
        raise TypeError(
            f"`presets` must be a dict of name -> preset. Received: {presets!r}"
        )
    _REGISTERED_PRESETS.update(presets)


def presets_home():
    """The folder holding presets converted on this machine."""
    return os.environ.get(
        "KERAS_UNILMV2_HOME",
        os.path.join(os.path.expanduser("~"), ".keras", "keras_unilmv2"),
    )


def shipped_presets_dir():
    """The folder of presets shipped with the package, or None."""
    try:
        from importlib import resources

        path = pathlib.Path(str(resources.files("keras_unilmv2.presets")))
        if path.is_dir():
            return path
    except (ImportError, ModuleNotFoundError, TypeError):
        pass
    # A source checkout used without installing: `<repo>/presets`.
    path = pathlib.Path(__file__).resolve().parents[2] / "presets"
    return path if path.is_dir() else None


def _is_preset_dir(path):
    return os.path.isfile(os.path.join(path, "config.json"))


def local_preset_dir(name):
    """Where the preset `name` is available locally, or None."""
    shipped = shipped_presets_dir()
    candidates = [os.path.join(presets_home(), name)]
    if shipped is not None:
        candidates.insert(0, os.fspath(shipped / name))
    for path in candidates:
        if _is_preset_dir(path):
            return path
    return None


def all_preset_names():
    names = set(_REGISTERED_PRESETS)
    shipped = shipped_presets_dir()
    if shipped is not None:
        names.update(p.name for p in shipped.iterdir() if _is_preset_dir(p))
    return sorted(names)


def conversion_command(name):
    """The one command that makes a released preset available offline."""
    source = _REGISTERED_PRESETS[name]["source"]
    stem = source["checkpoint"].rsplit("/", 1)[-1][: -len(".bin")]
    cased = "" if source["lowercase"] else " --cased"
    return (
        f"python tools/convert_unilmv2_checkpoint.py --checkpoint {stem}.bin "
        f"--config {stem}-config.json --vocab {stem}-vocab.txt "
        f"--output {os.path.join(presets_home(), name)}{cased}"
    )


def resolve_preset(preset):
    """Maps a preset name to a local directory; passes other handles through.

    Raises:
        ValueError: for a released preset that is not converted on this
            machine (the message gives the download addresses and the
            converter command), or for a string that is neither a known
            name nor a path/handle.
    """
    if not isinstance(preset, (str, os.PathLike)):
        raise TypeError(
            "`preset` must be a preset name or a path. Received: "
            f"{preset!r} of type {type(preset).__name__}"
        )
    preset = os.fspath(preset)
    local = local_preset_dir(preset) if os.sep not in preset else None
    if local is not None:
        return local
    if preset in _REGISTERED_PRESETS:
        source = _REGISTERED_PRESETS[preset]["source"]
        raise ValueError(
            f"The preset {preset!r} is a released Microsoft checkpoint that is "
            "not converted on this machine yet (this library never downloads "
            "at run time). Download\n"
            f"  {source['checkpoint']}\n  {source['config']}\n  {source['vocabulary']}\n"
            "then convert them once:\n"
            f"  {conversion_command(preset)}\n"
            "(or set KERAS_UNILMV2_HOME to where converted presets live). To "
            "build the architecture without weights, pass `load_weights=False` "
            "to `UniLMv2Backbone.from_preset`."
        )
    if "://" in preset or os.path.isdir(preset):
        return preset
    raise ValueError(
        f"Unknown preset {preset!r}: it is neither a UniLMv2 preset name "
        f"({', '.join(all_preset_names())}) nor an existing preset directory "
        "or a `hf://` / `kaggle://` handle."
    )


# === Preset files ===

CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.weights.h5"
SHARDED_WEIGHTS_FILE = "model.weights.json"
JSON_FILES = (
    CONFIG_FILE,
    "tokenizer.json",
    "task.json",
    "preprocessor.json",
    METADATA_FILE,
)
CHECKSUM_KEY = "weights_sha256"


def file_sha256(path, chunk_size=1 << 20):
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_json_file(path, what="file"):
    """Parses a JSON file; an unreadable one raises a `ValueError` with its path."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(
            f"The {what} {path!r} is not valid JSON (truncated or corrupted?): {e}"
        ) from e


def _weights_files(preset_dir):
    names = sorted(os.listdir(preset_dir))
    return [n for n in names if n.endswith((".weights.h5", ".weights.json"))]


def record_weights_checksums(preset_dir):
    """Writes the sha256 of every `*.weights.h5` / `*.weights.json` file of
    `preset_dir` into its `metadata.json` (key `"weights_sha256"`).

    `save_to_preset` calls this; `from_preset` verifies the sums. Returns
    the dict written, or None when the directory has no `metadata.json`.
    """
    metadata_path = os.path.join(preset_dir, METADATA_FILE)
    if not os.path.isfile(metadata_path):
        return None
    metadata = read_json_file(metadata_path, "preset metadata")
    sums = {
        name: file_sha256(os.path.join(preset_dir, name))
        for name in _weights_files(preset_dir)
    }
    metadata[CHECKSUM_KEY] = sums
    write_json_atomically(metadata_path, metadata)
    return sums


def verify_weights_checksums(preset_dir):
    """Compares the weights files with the sums recorded in `metadata.json`.

    A preset without recorded sums passes. Raises a `ValueError` naming the
    file whose bytes differ from what was saved (corrupted or modified) or
    that is missing.
    """
    metadata_path = os.path.join(preset_dir, METADATA_FILE)
    if not os.path.isfile(metadata_path):
        return
    sums = read_json_file(metadata_path, "preset metadata").get(CHECKSUM_KEY)
    if not isinstance(sums, dict):
        return
    for name, expected in sorted(sums.items()):
        path = os.path.join(preset_dir, name)
        if not os.path.isfile(path):
            raise ValueError(
                f"The preset's weights file {path!r} is missing (its "
                f"{METADATA_FILE} records a checksum for it)."
            )
        actual = file_sha256(path)
        if actual != expected:
            raise ValueError(
                f"The weights file {path!r} is corrupted or was modified after "
                f"the preset was saved: its sha256 is {actual}, {METADATA_FILE} "
                f"records {expected}. Restore or re-create the preset (or, if "
                f"the change is intended, remove `{CHECKSUM_KEY}` from "
                f"{METADATA_FILE})."
            )


def check_preset_files(preset_dir, weights=False):
    """Checks a local preset directory before keras-hub reads it.

    Every JSON file of the preset must parse (a truncated file is reported
    with its path), and with `weights=True` the backbone weights must exist
    (`model.weights.h5`, or a sharded `model.weights.json`) and match the
    checksums recorded in `metadata.json`.
    """
    for name in JSON_FILES:
        path = os.path.join(preset_dir, name)
        if os.path.isfile(path):
            read_json_file(path, f"preset file `{name}`")
    if not weights:
        return
    if not os.path.isfile(os.path.join(preset_dir, WEIGHTS_FILE)) and not os.path.isfile(
        os.path.join(preset_dir, SHARDED_WEIGHTS_FILE)
    ):
        raise ValueError(
            f"The preset's weights file {os.path.join(preset_dir, WEIGHTS_FILE)!r} "
            "does not exist. Restore it, or pass `load_weights=False` to build "
            "the model without weights."
        )
    verify_weights_checksums(preset_dir)


def write_json_atomically(path, data):
    """Writes `data` as JSON to a temporary file beside `path` (named with
    this process' id, so concurrent writers never share one), syncs it to
    disk, then renames it over `path`: a reader sees the old file or the
    new one, never a partial one.

    Example:
    ```python
    write_json_atomically("run/state.json", {"step": 200})
    ```
    """
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):  # Serialization failed: `path` is untouched.
            os.remove(tmp)


# === Weights-file structure ===


def _expected_weights(model):
    """`{h5 dataset name: (shape, variable path)}` of what `save_weights`
    would write for `model`, without writing anything; None if this Keras
    version's saving internals differ from the ones this reads."""
    try:
        from keras.src.saving import saving_lib

        class Recorder(saving_lib.H5IOStore):
            def __init__(self):  # No file: only records names and shapes.
                self.mode = "w"
                self.entries = {}
                self.path = ""

            def __bool__(self):
                return True

            def make(self, path, metadata=None):
                self.path = path
                return self

            def __setitem__(self, key, value):
                prefix = f"{self.path}/vars" if self.path else "vars"
                self.entries[f"{prefix}/{key}"] = (
                    tuple(value.shape),
                    getattr(value, "path", None) or f"{self.path}/{key}",
                )

            def close(self):
                pass

        store = Recorder()
        saving_lib._save_state(
            model,
            weights_store=store,
            assets_store=None,
            inner_path="",
            visited_saveables=set(),
        )
        return store.entries
    except Exception:  # pragma: no cover - another Keras version
        return None


def _file_weights(path):
    import h5py

    found = {}
    try:
        with h5py.File(path, "r") as f:

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    found[name] = tuple(obj.shape)

            f.visititems(visit)
    except OSError as e:
        raise ValueError(
            f"The weights file {path!r} cannot be read as HDF5 (truncated or "
            f"corrupted?): {e}"
        ) from e
    return found


def _list(items, limit=3):
    items = list(items)
    text = "; ".join(items[:limit])
    return text + (f"; and {len(items) - limit} more" if len(items) > limit else "")


def check_weights_file(model, path):
    """Compares a `.weights.h5` file with `model`'s variables before loading.

    Raises a `ValueError` naming the file when it cannot be read, when a
    tensor's shape differs from its variable's (both shapes are given), when
    the model has variables the file lacks, or when the file holds weights
    the model has no variable for (Keras would silently ignore those: e.g. a
    config saying 2 layers loads the first 2 of 4 layers of weights).
    """
    found = _file_weights(path)
    expected = _expected_weights(model)
    if expected is None or any(k.startswith("_layer_checkpoint_dependencies") for k in found):
        return
    optimizer_parts = ("optimizer/", "_compile_metrics/", "_loss_tracker/")
    # A file of a trained model may carry optimizer/metric state that a
    # model built for inference lacks: that is not a mismatch.
    extra = [
        k for k in found if k not in expected and not k.startswith(optimizer_parts)
    ]
    missing = [k for k in expected if k not in found]
    different = [
        k for k in expected if k in found and tuple(found[k]) != tuple(expected[k][0])
    ]
    if not (extra or missing or different):
        return
    problems = []
    if different:
        problems.append(
            "shape differences: "
            + _list(
                f"variable `{expected[k][1]}` has shape {expected[k][0]} in the "
                f"model but {found[k]} in the file (`{k}`)"
                for k in different
            )
        )
    layer_hint = ""
    num_layers = getattr(model, "num_layers", None)
    if isinstance(num_layers, int):
        names = {
            m.group(0)
            for k in found
            for m in [re.match(r"layers/[a-z0-9_]*transformer_layer(_\d+)?", k)]
            if m
        }
        if names and len(names) != num_layers:
            layer_hint = (
                f" The file holds {len(names)} transformer layers, the model "
                f"(its config) {num_layers}."
            )
    if extra:
        problems.append(
            f"{len(extra)} tensors in the file that the model has no variable "
            "for: " + _list(f"`{k}` {found[k]}" for k in sorted(extra))
        )
    if missing:
        problems.append(
            f"{len(missing)} variables missing from the file: "
            + _list(f"`{expected[k][1]}` {expected[k][0]}" for k in missing)
        )
    raise ValueError(
        f"The weights file {path!r} does not match the model it is loaded "
        f"into (a config of another architecture?).{layer_hint} Found "
        + "; ".join(problems)
        + "."
    )


# === Compatibility of a task's parts ===


def layout_positions(preprocessor):
    """How many rows of the position table a preprocessor's layouts use
    (None when unknown). Seq2seq layouts use source plus target positions."""
    source = getattr(preprocessor, "encoder_sequence_length", None)
    target = getattr(preprocessor, "decoder_sequence_length", None)
    if isinstance(source, int) and isinstance(target, int):
        return source + target
    length = getattr(preprocessor, "sequence_length", None)
    return length if isinstance(length, int) and not isinstance(length, bool) else None


def _tokenizer_size(tokenizer):
    if tokenizer is None or getattr(tokenizer, "vocabulary", None) is None:
        return None
    try:
        return int(tokenizer.vocabulary_size())
    except Exception:  # No vocabulary set yet.
        return None


def check_vocabulary_fits(tokenizer, vocabulary_size, where):
    """The tokenizer's ids must index the backbone's embedding table."""
    size = _tokenizer_size(tokenizer)
    if size is not None and isinstance(vocabulary_size, int) and size > vocabulary_size:
        raise ValueError(
            f"The tokenizer has {size} tokens but {where} has "
            f"`vocabulary_size` {vocabulary_size}: token ids "
            f"{vocabulary_size}..{size - 1} would index past the embedding "
            "table. Use the tokenizer the backbone was trained with (or a "
            "vocabulary file of at most that many tokens)."
        )


def check_positions_fit(preprocessor, max_sequence_length, where):
    """The preprocessor's layouts must fit the backbone's position table."""
    needed = layout_positions(preprocessor)
    if needed is not None and isinstance(max_sequence_length, int) and (
        needed > max_sequence_length
    ):
        raise ValueError(
            f"The preprocessor's layout uses {needed} positions "
            f"({type(preprocessor).__name__} with sequence_length={needed}) "
            f"but {where} has a position table of `max_sequence_length` = "
            f"{max_sequence_length} rows. Use a `sequence_length` of at most "
            f"{max_sequence_length}."
        )


def check_task_parts(task):
    """A task's preprocessor must fit its backbone (vocabulary, positions)."""
    backbone = getattr(task, "backbone", None)
    preprocessor = getattr(task, "preprocessor", None)
    if backbone is None or preprocessor is None:
        return
    where = "the task's backbone"
    check_vocabulary_fits(
        getattr(preprocessor, "tokenizer", None),
        getattr(backbone, "vocabulary_size", None),
        where,
    )
    check_positions_fit(
        preprocessor, getattr(backbone, "max_sequence_length", None), where
    )


def _fit_default_preprocessor(preprocessor, table):
    """Shortens a default preprocessor's layout to a `table`-row position
    table (a backbone-only preset with a small table, whose task gets the
    preprocessor class's default lengths, e.g. 512). Seq2seq preprocessors
    are left as they are (the task tiles the table)."""
    needed = layout_positions(preprocessor)
    if needed is None or needed <= table or hasattr(preprocessor, "encoder_sequence_length"):
        return preprocessor
    # Question answering: question and stride must fit the shorter window.
    if isinstance(getattr(preprocessor, "max_question_length", None), int):
        preprocessor.max_question_length = min(
            preprocessor.max_question_length, max(1, table // 4)
        )
    if isinstance(getattr(preprocessor, "doc_stride", None), int):
        preprocessor.doc_stride = min(preprocessor.doc_stride, max(1, table // 2))
    preprocessor.sequence_length = table
    return preprocessor


def _check_against_config(loaded, preset_dir):
    """A tokenizer or preprocessor loaded alone: compare with `config.json`."""
    path = os.path.join(preset_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        return
    config = read_json_file(path, f"preset file `{CONFIG_FILE}`").get("config", {})
    where = f"the preset's backbone ({path})"
    tokenizer = getattr(loaded, "tokenizer", loaded)
    check_vocabulary_fits(tokenizer, config.get("vocabulary_size"), where)
    # A seq2seq task tiles the table to its preprocessor's lengths.
    if getattr(loaded, "encoder_sequence_length", None) is None:
        check_positions_fit(loaded, config.get("max_sequence_length"), where)


# === Saving ===

_ACTIVE_SAVES = []
# Directories this process created or emptied, and the preset parts it has
# written into them: finishing such a preset part by part
# (`backbone.save_to_preset(d)` then `tokenizer.save_to_preset(d)`) is not
# an overwrite.
_WRITTEN_PARTS = {}
_PARTS = {
    "task": {"task", "backbone", "preprocessor", "tokenizer"},
    "preprocessor": {"preprocessor", "tokenizer"},
    "backbone": {"backbone"},
    "tokenizer": {"tokenizer"},
}


def _part(obj):
    from keras_hub.models import Backbone
    from keras_hub.models import Preprocessor
    from keras_hub.models import Task
    from keras_hub.tokenizers import Tokenizer

    for cls, name in (
        (Task, "task"),
        (Backbone, "backbone"),
        (Preprocessor, "preprocessor"),
        (Tokenizer, "tokenizer"),
    ):
        if isinstance(obj, cls):
            return name
    return type(obj).__name__


def _check_writable(path, part, overwrite):
    parts = _PARTS.get(part, {part})
    if not os.path.exists(path) or (os.path.isdir(path) and not os.listdir(path)):
        _WRITTEN_PARTS[path] = set()
        return
    if not os.path.isdir(path):
        raise ValueError(
            f"`preset_dir` must be a directory. Received: preset_dir={path!r} "
            "(an existing file)"
        )
    if overwrite:
        _WRITTEN_PARTS[path] = set()
        return
    written = _WRITTEN_PARTS.get(path)
    if written is not None and not parts & written:
        return
    entries = sorted(os.listdir(path))
    held = "another preset's files" if CONFIG_FILE in entries else "files"
    shown = ", ".join(entries[:6]) + (", ..." if len(entries) > 6 else "")
    raise ValueError(
        f"`preset_dir` {path!r} is not empty: it holds {held} ({shown}). "
        "Saving would overwrite them (and could mix two presets). Choose a new "
        "or empty directory, or pass `overwrite=True`."
    )


@contextlib.contextmanager
def _saving(preset_dir, part, overwrite):
    path = os.path.realpath(os.path.expanduser(os.fspath(preset_dir)))
    outermost = path not in _ACTIVE_SAVES
    if outermost:
        _check_writable(path, part, overwrite)
    _ACTIVE_SAVES.append(path)
    try:
        yield outermost
    finally:
        _ACTIVE_SAVES.pop()
    _WRITTEN_PARTS.setdefault(path, set()).update(_PARTS.get(part, {part}))
    if outermost and part in ("backbone", "task"):
        record_weights_checksums(path)


def _is_local_dir(preset):
    return isinstance(preset, str) and "://" not in preset and os.path.isdir(preset)


def _preprocessor_from_keywords(cls, preset, kwargs):
    """Task `from_preset` keywords of the preprocessor's constructor
    (`sequence_length`, `encoder_sequence_length`, ...) build the
    preprocessor with them (keras-hub would pass them to the task, which
    ignores them); a keyword neither the task nor its preprocessor takes is
    a `TypeError`. Edits `kwargs` in place."""
    import inspect

    def params(function):
        return set(inspect.signature(function).parameters) - {
            "self", "args", "kwargs", "tokenizer"
        }

    task_params = params(cls.__init__) | {
        "load_weights", "dtype", "name", "trainable", "compile"
    }
    preprocessor_cls = getattr(cls, "preprocessor_cls", None)
    preprocessor_params = params(preprocessor_cls.__init__) if preprocessor_cls else set()
    unknown = sorted(set(kwargs) - task_params - preprocessor_params)
    if unknown:
        raise TypeError(
            f"{cls.__name__}.from_preset() got unexpected keyword argument(s) "
            f"{unknown}. It accepts the task's arguments {sorted(task_params)} "
            f"and its preprocessor's {sorted(preprocessor_params)}."
        )
    preprocessor_kwargs = {
        k: kwargs.pop(k) for k in list(kwargs) if k in preprocessor_params - task_params
    }
    if not preprocessor_kwargs:
        return
    if kwargs.get("preprocessor") is not None:
        raise ValueError(
            f"Pass {sorted(preprocessor_kwargs)} either to "
            f"`{cls.__name__}.from_preset` or to the `preprocessor` you give "
            "it, not both."
        )
    kwargs["preprocessor"] = preprocessor_cls.from_preset(preset, **preprocessor_kwargs)


def _check_weights_filename(filepath):
    if not str(filepath).endswith(".weights.h5"):
        raise ValueError(
            "The filename must end in `.weights.h5`. "
            f"Received: filepath={filepath}"
        )


def _not_task_weights(task):
    """What a task's weights file leaves out: the backbone's layers (in
    `model.weights.h5`) and the optimizer."""
    skipped = list(task.backbone._flatten_layers())
    if getattr(task, "optimizer", None) is not None:
        skipped.append(task.optimizer)
    return skipped


class PresetMixin:
    """Preset names and reliability checks for `from_preset`/`save_to_preset`.

    Mix into a keras-hub `Backbone`, `Tokenizer`, `Preprocessor` or `Task`
    subclass, before the keras-hub base class. See the module docstring for
    what is checked. A task is also checked at construction: its
    preprocessor's tokenizer must not have more tokens than the backbone's
    `vocabulary_size`, nor its layout more positions than the backbone's
    `max_sequence_length`.

    Example:
    ```python
    backbone = keras_unilmv2.UniLMv2Backbone.from_preset("unilmv2_tiny_en_uncased")
    backbone.save_to_preset("/tmp/my_preset")       # new or empty directory
    backbone.save_to_preset("/tmp/my_preset", overwrite=True)  # replace it
    ```
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from keras_hub.models import Task

        if isinstance(self, Task):
            check_task_parts(self)

    @classmethod
    def from_preset(cls, preset, *args, **kwargs):
        from keras_hub.models import Backbone
        from keras_hub.models import Task

        resolved = resolve_preset(preset)
        local = _is_local_dir(resolved)
        if issubclass(cls, Task):
            _preprocessor_from_keywords(cls, resolved, kwargs)
        if local:
            load_weights = kwargs.get("load_weights", args[0] if args else True)
            check_preset_files(
                resolved, weights=issubclass(cls, (Backbone, Task)) and bool(load_weights)
            )
            if (
                issubclass(cls, Task)
                and getattr(cls, "preprocessor_cls", None) is not None
                and "preprocessor" not in kwargs
                and not os.path.isfile(os.path.join(resolved, "task.json"))
                and not os.path.isfile(os.path.join(resolved, "preprocessor.json"))
            ):
                # A backbone-only preset: the task gets a default
                # preprocessor, fitted to the backbone's position table.
                config = read_json_file(os.path.join(resolved, CONFIG_FILE))
                table = config.get("config", {}).get("max_sequence_length")
                if isinstance(table, int):
                    # keras-hub's loader, without this mixin's checks (the
                    # task checks the fitted preprocessor).
                    default = super(PresetMixin, cls.preprocessor_cls).from_preset(resolved)
                    kwargs["preprocessor"] = _fit_default_preprocessor(default, table)
        loaded = super().from_preset(resolved, *args, **kwargs)
        if isinstance(loaded, Task):
            # Tokenizer assets may load after the task is built.
            check_task_parts(loaded)
        elif local and not isinstance(loaded, Backbone):
            _check_against_config(loaded, resolved)
        return loaded

    def save_to_preset(self, preset_dir, *args, overwrite=False, **kwargs):
        """Saves to a preset directory; refuses to overwrite another one.

        Args:
            preset_dir: the directory to write. It must be new or empty, or
                hold only parts of a preset this process is writing there
                (e.g. `backbone.save_to_preset(d)` then
                `tokenizer.save_to_preset(d)`).
            overwrite: bool, write into a directory that holds other files
                (an older preset's files that are not rewritten stay).
            *args, **kwargs: passed to keras-hub's `save_to_preset` (e.g.
                `max_shard_size`).

        The sha256 of the weights files goes into `metadata.json`;
        `from_preset` verifies it.
        """
        with _saving(preset_dir, _part(self), overwrite):
            super().save_to_preset(preset_dir, *args, **kwargs)

    def save_task_weights(self, filepath):
        """A task's own weights (those not in its backbone), as keras-hub
        saves them, without the optimizer's state.

        `from_preset` builds a fresh task whose optimizer has no variables
        yet, so Keras could only skip a saved optimizer state (with a
        warning), while it would make `task.weights.h5` up to three times
        the model's size. A preset holds weights; to resume training with
        the optimizer's state, save the model (`task.save("run.keras")`) or
        use the pre-training and recipe checkpoints.
        """
        from keras_hub.models import Task

        if not isinstance(self, Task):
            return super().save_task_weights(filepath)
        _check_weights_filename(filepath)
        if not self.has_task_weights():
            raise ValueError(
                f"Task {self} has no weights not in the `backbone`. "
                "`save_task_weights()` has nothing to save."
            )
        import keras

        keras.saving.save_weights(
            self, filepath=filepath, objects_to_skip=_not_task_weights(self)
        )

    def load_task_weights(self, filepath):
        """Loads what `save_task_weights` saved; the optimizer keeps its
        (fresh) state, also for an older file that holds an optimizer's."""
        from keras_hub.models import Task

        if not isinstance(self, Task):
            return super().load_task_weights(filepath)
        _check_weights_filename(filepath)
        import keras

        keras.saving.load_weights(self, filepath, objects_to_skip=_not_task_weights(self))

    def load_weights(self, filepath, *args, **kwargs):
        """`keras.Model.load_weights`, with the file compared to the model first.

        For a `.weights.h5` file (unless `skip_mismatch=True`) see
        `keras_unilmv2.utils.preset_utils.check_weights_file`; an unreadable
        file raises a `ValueError` with its path.
        """
        path = os.fspath(filepath)
        if path.endswith(".weights.h5") and not kwargs.get("skip_mismatch", False):
            if not os.path.isfile(path):
                raise ValueError(f"The weights file {path!r} does not exist.")
            check_weights_file(self, path)
        try:
            return super().load_weights(filepath, *args, **kwargs)
        except OSError as e:
            raise ValueError(
                f"Could not read the weights file {path!r} (truncated or "
                f"corrupted?): {e}"
            ) from e
