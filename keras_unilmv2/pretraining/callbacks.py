"""The Keras callbacks of a pre-training run, and its training curves.

Each factory takes the `keras` module (imported by the caller once the
backend is chosen) and returns a callback instance.
"""

import csv
import os

from keras_unilmv2.pretraining import distributed
from keras_unilmv2.pretraining.checkpoints import save_checkpoint

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


def step_logger(keras, path, steps_per_epoch):
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


def reseed_dropout(keras, seed):
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


def stop_after(keras, epochs):
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


def throughput(keras, steps_per_interval, micro_batches, tokens_per_batch, total_steps, log):
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


def checkpointer(keras, backup_dir, restore_from, restore_epoch):
    class CrashSafeBackup(keras.callbacks.Callback):
        """Restores `restore_from` at the start, checkpoints every interval."""

        def __init__(self):
            super().__init__()
            self.last_epoch = restore_epoch

        def on_train_begin(self, logs=None):
            if restore_from is None:
                return
            from keras_unilmv2.models.task_variables import restore_checkpoint

            restore_checkpoint(self.model, restore_from)

        def on_epoch_end(self, epoch, logs=None):
            # Every process gathers the weights sharded over processes;
            # process 0 writes.
            with distributed.gathered_variables(self.model):
                if distributed.is_chief():
                    save_checkpoint(self.model, backup_dir, epoch + 1)
            self.last_epoch = epoch + 1

    return CrashSafeBackup()
