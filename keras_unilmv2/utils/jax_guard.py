"""Keeps a model's weights when a JAX `fit`/`evaluate` fails at its start.

Keras' JAX trainer detaches every variable's value at the first step of a
`fit` (and `evaluate`) to save memory and re-attaches the updated values at
the end, even when the run fails. If the first batch raises (e.g. the
library's own label check inside a `tf.data` pipeline), nothing updated
exists yet and every variable is left empty: the model cannot even
`predict` afterwards. `keep_weights_on_error` re-attaches the values the
variables held when the run began, for such a failure.

TensorFlow runs a training step as a graph, where the optimizer's updates
that do not depend on the batch (AdamW's decoupled weight decay) may run
before the failing input op: a failed first step would still shrink every
weight. There the snapshot holds copies of the values (one copy of the
weights and the optimizer state, until the first step has run) and a
failure at the start assigns them back.
"""

import keras
import tensorflow as tf


class _Snapshot(keras.callbacks.Callback):
    """Holds references (no copies) to the variables' values until the
    first step has run: from then on Keras' own state is the newer one."""

    def __init__(self):
        super().__init__()
        self.values = None

    def _take(self, logs=None):
        model = self.model
        variables = list(model.variables)
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None:
            variables += list(optimizer.variables)
        variables += list(getattr(model, "metrics_variables", []))
        if keras.config.backend() == "tensorflow":

            self.values = [(v, tf.identity(v.value)) for v in variables]
        else:
            self.values = [(v, v._value) for v in variables]

    def _drop(self, batch=None, logs=None):
        self.values = None

    on_train_begin = on_test_begin = _take
    on_train_batch_end = on_test_batch_end = _drop

    def restore(self):
        for variable, value in self.values or ():
            if keras.config.backend() == "tensorflow":
                variable.assign(value)
            elif variable._value is None and value is not None:
                variable._value = value
        self.values = None


def keep_weights_on_error(model, run, kwargs):
    """`run(**kwargs)`, restoring the weights if it fails at its start
    (JAX and TensorFlow; see the module docstring).

    `kwargs` are the keyword arguments of `fit`/`evaluate`; a snapshot
    callback is added to `kwargs["callbacks"]`. Other backends, or a
    `callbacks` argument that is not a list, run unchanged.
    """
    callbacks = kwargs.get("callbacks")
    if keras.config.backend() not in ("jax", "tensorflow") or not (
        callbacks is None or isinstance(callbacks, (list, tuple))
    ):
        return run(**kwargs)
    snapshot = _Snapshot()
    kwargs = dict(kwargs, callbacks=list(callbacks or []) + [snapshot])
    try:
        return run(**kwargs)
    except BaseException:
        snapshot.restore()
        raise
