"""What the fine-tuning tasks share: the default optimizer and its
fit-sized learning-rate schedule, and per-epoch shuffling.

The defaults follow s2s-ft's fine-tuning recipe (`run_seq2seq.py`): AdamW
with weight decay 0.01 (none on biases and LayerNorm), gradient clipping at
norm 1.0, a linear warm-up over the first 10% of the steps and a linear
decay to 0 at the last step. The peak rate depends on the model's width
(`default_learning_rate`); the README's "Fine-tuning defaults" section
gives the measurements behind it.
"""

import math
import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_unilmv2.utils.jax_guard import keep_weights_on_error
from keras_unilmv2.utils.schedules import FineTuningSchedule
from keras_unilmv2.utils.schedules import WarmupLinearDecay

WARMUP_FRACTION = 0.1

# (smallest hidden_dim, peak learning rate), widest first. 1024 and 768:
# the upper end of s2s-ft's suggested ranges for large (1e-5 to 3e-5) and
# its base recipe (7e-5). 256 and below: measured on the shipped tiny preset
# (README, "Fine-tuning defaults"). 384: between the two; the small preset's
# classification and QA guides meet their goals with it (no sweep).
LEARNING_RATES = ((1024, 3e-5), (768, 7e-5), (384, 3e-4), (0, 1e-3))


def default_learning_rate(hidden_dim):
    """The default peak fine-tuning rate for a backbone `hidden_dim` wide.

    >>> default_learning_rate(768), default_learning_rate(256)
    (7e-05, 0.001)
    """
    for width, rate in LEARNING_RATES:
        if hidden_dim >= width:
            return rate
    return LEARNING_RATES[-1][1]


def default_optimizer(learning_rate, warmup_fraction=WARMUP_FRACTION, total_steps=None):
    """AdamW(`learning_rate` peak, weight decay 0.01 except biases and
    LayerNorm, clipnorm 1.0) on a `FineTuningSchedule` that `fit` sizes.

    With `total_steps`, the schedule is instead fixed: a
    `WarmupLinearDecay` over `total_steps` optimizer steps (warm-up over
    `warmup_fraction` of them), which `fit` leaves alone. A run that calls
    `fit` once per epoch, or resumes from a checkpoint, needs this.

    Example:
    ```python
    task.compile(optimizer=default_optimizer(3e-5, 0.1, total_steps=1000))
    ```
    """
    if total_steps is None:
        schedule = FineTuningSchedule(learning_rate, warmup_fraction)
    else:
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(
                f"`total_steps` must be an integer >= 1. Received: total_steps={total_steps!r}"
            )
        if not 0 <= warmup_fraction < 1:
            raise ValueError(
                "`warmup_fraction` must be in [0, 1). Received: "
                f"warmup_fraction={warmup_fraction!r}"
            )
        warmup_steps = min(int(round(warmup_fraction * total_steps)), total_steps - 1)
        schedule = WarmupLinearDecay(learning_rate, warmup_steps, total_steps)
    optimizer = keras.optimizers.AdamW(
        schedule,
        weight_decay=0.01,
        epsilon=1e-6,
        clipnorm=1.0,
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def _is_tf_dataset(x):
    return isinstance(x, tf.data.Dataset)


def _is_dataset(x):
    return _is_tf_dataset(x) or (
        x is not None and type(x).__module__.startswith(("grain", "torch.utils"))
    )


def _map(fn, data):
    """`fn` over the arrays of nested dicts and tuples (a list is one array,
    e.g. a batch of strings)."""
    if isinstance(data, dict):
        return {k: _map(fn, v) for k, v in data.items()}
    if isinstance(data, tuple):
        return tuple(_map(fn, v) for v in data)
    return fn(data)


def _num_examples(data):
    sizes = []
    _map(lambda v: sizes.append(int(v.shape[0]) if hasattr(v, "shape") else len(v)), data)
    return sizes[0] if sizes else 0


def _to_slices(value):
    if isinstance(value, np.ndarray) or "tensorflow" in type(value).__module__:
        return value
    if keras.ops.is_tensor(value):
        return keras.ops.convert_to_numpy(value)
    if isinstance(value, list) and value and not isinstance(value[0], (list, tuple)):
        return np.asarray(value)
    return value


def _check_same_length(data):
    """Every input (and `y`, `sample_weight`) must hold one row per example."""
    sizes = {}

    def record(path, value):
        sizes[path] = int(value.shape[0]) if hasattr(value, "shape") else len(value)

    def walk(path, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{path}[{k!r}]", v)
        elif isinstance(value, tuple):
            for i, v in enumerate(value):
                walk(f"{path}[{i}]", v)
        else:
            record(path, value)

    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    walk("x", x)
    if y is not None:
        walk("y", y)
    if sample_weight is not None:
        walk("sample_weight", sample_weight)
    if len(set(sizes.values())) > 1:
        raise ValueError(
            "The inputs of `fit` must hold the same number of examples; "
            f"received {sizes}."
        )


def split_validation(x, y, sample_weight, validation_split):
    """Keras' `validation_split`: the last fraction of the examples, taken
    before any shuffling."""
    data = keras.utils.pack_x_y_sample_weight(x, y, sample_weight)
    n = _num_examples(data)
    if not 0 < validation_split < 1:
        raise ValueError(
            "`validation_split` must be in (0, 1). Received: "
            f"validation_split={validation_split!r}"
        )
    cut = int(math.floor(n * (1.0 - validation_split)))
    if cut < 1 or cut >= n:
        raise ValueError(
            f"`validation_split={validation_split}` leaves no training or no "
            f"validation example out of {n}."
        )

    def take(part):
        return _map(lambda v: v[part], data)

    train = keras.utils.unpack_x_y_sample_weight(take(slice(0, cut)))
    validation = keras.utils.unpack_x_y_sample_weight(take(slice(cut, n)))
    return train, tuple(v for v in validation if v is not None)


def shuffled_dataset(x, y=None, sample_weight=None, batch_size=None, seed=None):
    """Array-like inputs as a `tf.data.Dataset` reshuffled every epoch.

    keras-hub tasks turn array inputs into a `tf.data.Dataset` before Keras
    sees them, and Keras ignores `shuffle` for datasets; this shuffles the
    examples (with a buffer holding all of them) before batching instead.
    """
    data = _map(_to_slices, keras.utils.pack_x_y_sample_weight(x, y, sample_weight))
    n = _num_examples(data)
    if n == 0:
        raise ValueError("`x` is an empty batch: there is nothing to train on.")
    _check_same_length(data)

    dataset = tf.data.Dataset.from_tensor_slices(data)
    return dataset.shuffle(n, seed=seed, reshuffle_each_iteration=True).batch(
        batch_size or 32
    )


def shuffle_inputs(x, y=None, sample_weight=None, batch_size=None, shuffle=None):
    """`fit`'s data with `shuffle` honoured for array-like inputs.

    Returns `(x, y, sample_weight, batch_size, shuffle)` to pass on to
    keras-hub's `fit`: array-like inputs with `shuffle=True` become one
    `shuffled_dataset` (reshuffled every epoch; the others `None`,
    `shuffle=False`, as Keras would only warn about a dataset); anything
    else is returned as it is. `shuffle=None` (the tasks' default) means
    `True` for array-like inputs and `False` for a dataset, which keeps its
    own order: Keras cannot shuffle one, and warns only when a user asks it
    to (`shuffle=True`).
    """
    array_like = x is not None and not _is_dataset(x)
    if shuffle is None:
        shuffle = array_like
    if shuffle and array_like:
        return shuffled_dataset(x, y, sample_weight, batch_size), None, None, None, False
    return x, y, sample_weight, batch_size, shuffle


class FineTuningMixin:
    """Default optimizer, fit-sized schedule and shuffling.

    Mix into a task before the keras-hub base class (after `PresetMixin`).
    A task sets `default_learning_rate` and calls `default_optimizer()` for
    `compile(optimizer="auto")`.
    """

    # None: by the backbone's width (`default_learning_rate()`), times
    # `learning_rate_scale`; a subclass or an experiment may set a number.
    default_learning_rate = None
    # Understanding tasks (classification, QA) take 0.3 of the rate that
    # generation needs: on the tiny preset, classification reached 0.376
    # test accuracy at 3e-4 against 0.306 at 1e-3 (which fits the training
    # set); for base models 0.3 x 7e-5 = 2.1e-5 lies in the RoBERTa-style
    # sweep of 1e-5 to 4e-5 the spec suggests for GLUE/SQuAD.
    learning_rate_scale = 1.0

    def default_optimizer(self):
        rate = self.default_learning_rate
        if rate is None:
            rate = self.learning_rate_scale * default_learning_rate(
                self.backbone.hidden_dim
            )
        return default_optimizer(rate)

    def compile(self, optimizer="auto", *args, **kwargs):
        """`optimizer="auto"` is `default_optimizer()`: AdamW with a peak
        rate chosen by the backbone's width (3e-5 from `hidden_dim` 1024,
        7e-5 from 768, 3e-4 from 384, 1e-3 below; 0.3 of that for
        classification and QA) on a `FineTuningSchedule`
        (warm-up over 10% of each `fit` call, linear decay to 0), weight
        decay 0.01 (none on biases and LayerNorm), clipnorm 1.0."""
        if isinstance(optimizer, str) and optimizer == "auto":
            optimizer = self.default_optimizer()
        super().compile(optimizer, *args, **kwargs)

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        sample_weight=None,
        validation_data=None,
        shuffle=None,
        **kwargs,
    ):
        """As `keras.Model.fit`; array inputs are reshuffled every epoch
        unless `shuffle=False` (a dataset keeps its own order, as in
        Keras; the default `None` does not ask Keras to shuffle it, so
        Keras does not warn that it cannot), and a default (`"auto"`)
        optimizer's warm-up and decay span this call's steps. On JAX, a
        failure at the first step (e.g. a bad label found inside a
        `tf.data` pipeline) leaves the weights as they were."""
        validation_split = kwargs.pop("validation_split", None)
        if validation_split and validation_data is None and not _is_dataset(x):
            (x, y, sample_weight), validation_data = split_validation(
                x, y, sample_weight, validation_split
            )
        elif validation_split:
            kwargs["validation_split"] = validation_split
        x, y, sample_weight, batch_size, shuffle = shuffle_inputs(
            x, y, sample_weight, batch_size, shuffle
        )
        self._plan_schedule(x, batch_size, kwargs)
        return keep_weights_on_error(
            self,
            super().fit,
            dict(
                x=x,
                y=y,
                batch_size=batch_size,
                sample_weight=sample_weight,
                validation_data=validation_data,
                shuffle=shuffle,
                **kwargs,
            ),
        )

    def evaluate(self, x=None, y=None, batch_size=None, sample_weight=None, **kwargs):
        """`keras.Model.evaluate`; on JAX, a failure at the first step
        leaves the weights as they were."""
        return keep_weights_on_error(
            self,
            super().evaluate,
            dict(x=x, y=y, batch_size=batch_size, sample_weight=sample_weight, **kwargs),
        )

    def _plan_schedule(self, x, batch_size, fit_kwargs):
        optimizer = getattr(self, "optimizer", None)
        schedule = getattr(optimizer, "_learning_rate", None)
        if not isinstance(schedule, FineTuningSchedule):
            return
        steps_per_epoch = fit_kwargs.get("steps_per_epoch")
        if steps_per_epoch is None:
            if _is_tf_dataset(x):
                cardinality = int(x.cardinality())
                steps_per_epoch = cardinality if cardinality > 0 else None
            elif x is not None and not _is_dataset(x):
                steps_per_epoch = math.ceil(
                    _num_examples(keras.utils.pack_x_y_sample_weight(x))
                    / (batch_size or 32)
                )
        epochs = fit_kwargs.get("epochs", 1) - fit_kwargs.get("initial_epoch", 0)
        steps = None if steps_per_epoch is None else max(epochs, 1) * steps_per_epoch
        if steps is None:
            warnings.warn(
                "`fit` cannot tell how many steps this call trains (a dataset "
                "of unknown size and no `steps_per_epoch`): the default "
                "learning-rate schedule stays at its peak rate, without "
                "warm-up or decay. Pass `steps_per_epoch` to size it.",
                stacklevel=3,
            )
        before = schedule.get_config()
        first_step = int(keras.ops.convert_to_numpy(optimizer.iterations))
        schedule.plan(first_step, steps)
        if schedule.get_config() != before:
            # A compiled step holds the schedule's numbers: trace it anew.
            self.train_function = None
