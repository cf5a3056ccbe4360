"""Crash-safe checkpoints and run settings, shared with fine-tuning runs
(`keras_unilmv2.utils.recipes`).

A checkpoint is committed by a small JSON record written after its weights
(both written aside and renamed into place); `latest_valid_checkpoint`
skips any checkpoint whose weights are missing or differ from the record.
`check_run_settings` refuses to resume a run with other settings.
"""


import csv
import json
import os
import re
import shutil

from keras_unilmv2.utils.preset_utils import file_sha256
from keras_unilmv2.utils.preset_utils import write_json_atomically

CHECKPOINT_PATTERN = re.compile(r"^ckpt-(\d+)\.json$")
RUN_SETTINGS_FILE = "run.json"
KEEP_CHECKPOINTS = 2


def _fsync(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


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


def check_run_settings(backup_dir, settings, defaults=None, paths=(), write=True):
    """Refuses to resume checkpoints written with other settings.

    The first run stores `settings` in `<backup_dir>/run.json`; a later run
    with any different value raises a `ValueError` listing the differences
    (resuming them would silently mix two runs). `defaults` maps settings
    added after a `run.json` may have been written to the value they had
    then: a stored file without such a key counts as holding its default
    (so runs started by an older version resume when the new setting is
    left at its default). The settings named in `paths` are file paths,
    compared once made absolute (a relative path as stored by an older
    version is taken relative to the current directory): `preset` and
    `/abs/path/to/preset` are the same setting. With `write=False` (the
    processes of a multi-process run other than the chief) a missing file
    is left for the chief to write.

    Example:
    ```python
    check_run_settings("out/training/checkpoints", {"seed": 0, "init_from": "/data/base"},
                       paths=("init_from",))
    ```
    """
    path = os.path.join(backup_dir, RUN_SETTINGS_FILE)
    if not os.path.exists(path):
        if not write:  # Another process (the chief) writes it.
            return
        os.makedirs(backup_dir, exist_ok=True)
        write_json_atomically(path, settings)
        return
    with open(path) as f:
        stored = json.load(f)
    for key, value in (defaults or {}).items():
        stored.setdefault(key, value)
    settings = dict(settings)
    for key in paths:
        for values in (stored, settings):
            if isinstance(values.get(key), (str, os.PathLike)):
                values[key] = os.path.abspath(os.path.expanduser(os.fspath(values[key])))
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


def truncate_history(path, last_step):
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


def publish_preset(export_dir, output_dir):
    """Moves a finished preset into `output_dir`, `model.weights.h5` last:
    the preset is complete once that file exists."""
    names = sorted(os.listdir(export_dir), key=lambda n: n == "model.weights.h5")
    for name in names:
        target = os.path.join(output_dir, name)
        if os.path.isdir(target):
            shutil.rmtree(target)
        os.replace(os.path.join(export_dir, name), target)
    shutil.rmtree(export_dir)
