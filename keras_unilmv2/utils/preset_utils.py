"""Resolution of UniLMv2 preset names to local preset directories.

A name resolves, in order, to: a preset shipped in this repository's
`presets/` folder, then a converted copy in the user's preset home
(`$KERAS_UNILMV2_HOME`, default `~/.keras/keras_unilmv2`). Anything that is
not a registered name (a local directory, `hf://`, `kaggle://`) goes to
keras-hub's loader unchanged.
"""

import os
import pathlib

from keras_unilmv2.models.unilmv2_presets import backbone_presets


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
    names = set(backbone_presets)
    shipped = shipped_presets_dir()
    if shipped is not None:
        names.update(p.name for p in shipped.iterdir() if _is_preset_dir(p))
    return sorted(names)


def conversion_command(name):
    """The one command that makes a released preset available offline."""
    source = backbone_presets[name]["source"]
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
    if preset in backbone_presets:
        source = backbone_presets[preset]["source"]
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


class PresetMixin:
    """Makes `from_preset` accept UniLMv2 preset names.

    Mix into a keras-hub `Backbone`, `Tokenizer`, `Preprocessor` or `Task`
    subclass, before the keras-hub base class.
    """

    @classmethod
    def from_preset(cls, preset, *args, **kwargs):
        return super().from_preset(resolve_preset(preset), *args, **kwargs)
