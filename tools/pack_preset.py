"""Packs a trained preset for shipping: float16 weights, no checkpoints.

    python tools/pack_preset.py SOURCE DESTINATION [--weights-dtype float16]
        [--training-file history.csv --training-file curves.png ...]
        [--record KEY=JSON_FILE ...]

`tools/pretrain_pmlm.py` exports a float32 preset beside its training
folder (checkpoints, hundreds of MB). This copies the preset's own files
(`config.json`, `tokenizer.json`, `metadata.json`, `assets/`) to
DESTINATION, writes `model.weights.h5` with every float32 array stored as
`--weights-dtype` (float16 halves the file; the model still builds and
computes in its config's dtype, float32: Keras casts on load), copies the
named small files of `SOURCE/training/` (curves, history) and records in
`metadata.json` the storage dtype, the largest rounding error, the
weights' new sha256 and any `--record KEY=JSON_FILE` (e.g. figures
measured on the packed preset). DESTINATION must not exist: nothing is
overwritten.
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from keras_unilmv2.utils.preset_utils import METADATA_FILE  # noqa: E402
from keras_unilmv2.utils.preset_utils import WEIGHTS_FILE  # noqa: E402
from keras_unilmv2.utils.preset_utils import read_json_file  # noqa: E402
from keras_unilmv2.utils.preset_utils import record_weights_checksums  # noqa: E402
from keras_unilmv2.utils.preset_utils import verify_weights_checksums  # noqa: E402

STORAGE_DTYPES = ("float16", "float32")


def cast_weights_file(source, destination, dtype):
    """Copies a Keras `.weights.h5` file storing float32 arrays as `dtype`.

    Returns the largest absolute difference between a stored and an
    original value.
    """
    import h5py

    largest = 0.0
    with h5py.File(source, "r") as fin, h5py.File(destination, "w-") as fout:
        for key, value in fin.attrs.items():
            fout.attrs[key] = value

        def copy(name, item):
            nonlocal largest
            if isinstance(item, h5py.Dataset):
                data = item[()]
                if isinstance(data, np.ndarray) and data.dtype == np.float32:
                    cast = data.astype(dtype)
                    if not np.all(np.isfinite(cast[np.isfinite(data)])):
                        raise ValueError(
                            f"The weight {name!r} of {source!r} has values outside "
                            f"the range of {dtype}: store it as float32."
                        )
                    if data.size:
                        diff = np.abs(cast.astype(np.float32) - data)
                        largest = max(largest, float(np.max(diff)))
                    data = cast
                fout.create_dataset(name, data=data)
            else:
                group = fout.require_group(name)
                for key, value in item.attrs.items():
                    group.attrs[key] = value

        fin.visititems(copy)
    return largest


def pack(source, destination, weights_dtype="float16", training_files=(), records=None):
    if weights_dtype not in STORAGE_DTYPES:
        raise ValueError(
            f"`weights_dtype` must be one of {STORAGE_DTYPES}. Received: {weights_dtype!r}"
        )
    if not os.path.isfile(os.path.join(source, "config.json")):
        raise ValueError(f"`source` {source!r} is not a preset folder (no config.json).")
    if os.path.exists(destination):
        raise ValueError(
            f"`destination` {destination!r} exists: choose a new folder "
            "(this tool never overwrites)."
        )
    verify_weights_checksums(source)
    staging = destination.rstrip(os.sep) + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        os.makedirs(staging)
        for name in sorted(os.listdir(source)):
            path = os.path.join(source, name)
            if name in ("training", WEIGHTS_FILE):
                continue
            if os.path.isdir(path):
                shutil.copytree(path, os.path.join(staging, name))
            else:
                shutil.copy2(path, os.path.join(staging, name))
        largest = cast_weights_file(
            os.path.join(source, WEIGHTS_FILE), os.path.join(staging, WEIGHTS_FILE), weights_dtype
        )
        if training_files:
            os.makedirs(os.path.join(staging, "training"))
        for name in training_files:
            path = os.path.join(source, "training", name)
            if not os.path.isfile(path):
                raise ValueError(f"`--training-file` {name!r}: {path!r} does not exist.")
            shutil.copy2(path, os.path.join(staging, "training", name))
        metadata_path = os.path.join(staging, METADATA_FILE)
        metadata = read_json_file(metadata_path, "preset metadata")
        metadata["weights_storage"] = {
            "dtype": weights_dtype,
            "max_abs_rounding_error": largest,
            "packed_by": "python tools/pack_preset.py "
            f"{os.path.basename(os.path.normpath(source))} "
            f"{os.path.basename(os.path.normpath(destination))} --weights-dtype {weights_dtype}",
        }
        for key, value in (records or {}).items():
            metadata[key] = value
        with open(metadata_path, "w", encoding="utf-8") as f:
            json.dump(metadata, f, indent=2)
            f.write("\n")
        record_weights_checksums(staging)
        os.rename(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return metadata


def _parse_records(pairs):
    records = {}
    for pair in pairs:
        key, sep, path = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"`--record` must be KEY=JSON_FILE. Received: {pair!r}")
        records[key] = read_json_file(path, f"--record {key}")
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source")
    parser.add_argument("destination")
    parser.add_argument("--weights-dtype", default="float16", choices=STORAGE_DTYPES)
    parser.add_argument("--training-file", action="append", default=[])
    parser.add_argument("--record", action="append", default=[], metavar="KEY=JSON_FILE")
    args = parser.parse_args(argv)
    metadata = pack(
        args.source,
        args.destination,
        args.weights_dtype,
        args.training_file,
        _parse_records(args.record),
    )
    print(json.dumps(metadata["weights_storage"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
