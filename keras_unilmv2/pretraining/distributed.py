"""Device meshes and multi-process set-up of pre-training runs.

One pre-training run can span several processes (hosts, or several
processes on one machine): every process runs the same command with its
own `--process-id`, and they meet at `--coordinator-address HOST:PORT`.

- JAX: `keras.distribution.initialize` (`jax.distributed`; gloo collectives
  on CPU) and a `keras.distribution` over all processes' devices:
  `DataParallel` (`--mesh data`, the default with several processes) or
  `ModelParallel` on a `(batch, model)` mesh (`--mesh BxM`). Keras feeds
  each process its share of every global batch (the `tf.data` pipeline is
  rebatched and sharded by process).
- Process 0 (the chief) alone writes the vocabulary, the checkpoints, the
  history and the preset; the output directory must be on a file system
  all processes see (on one machine it is). A resumed run restores the same
  checkpoint in every process.
"""

import contextlib
import re

import tensorflow as tf

_STATE = {"num_processes": 1, "process_id": 0}


def check_process_options(coordinator_address, num_processes, process_id):
    """Checks the multi-process options (`--coordinator-address`,
    `--num-processes`, `--process-id`); returns them normalised.

    Example:
    ```python
    check_process_options("127.0.0.1:1234", 2, 0)  # ('127.0.0.1:1234', 2, 0)
    ```
    """
    from keras_unilmv2.utils.checks import check_int

    num_processes = check_int("num_processes", num_processes, 1, " (--num-processes)")
    process_id = check_int("process_id", process_id, 0, " (--process-id)")
    if process_id >= num_processes:
        raise ValueError(
            f"`process_id` (--process-id) must be in [0, num_processes) = "
            f"[0, {num_processes}). Received: process_id={process_id}"
        )
    if num_processes > 1:
        if not isinstance(coordinator_address, str) or not re.fullmatch(
            r"[^\s:]+:\d{1,5}", coordinator_address
        ):
            raise ValueError(
                "`coordinator_address` (--coordinator-address) must be 'HOST:PORT' "
                "when `num_processes` > 1 (the address of process 0). "
                f"Received: coordinator_address={coordinator_address!r}"
            )
    elif coordinator_address is not None:
        raise ValueError(
            "`coordinator_address` (--coordinator-address) is for multi-process "
            "runs; pass `num_processes` (--num-processes) > 1 with it. Received: "
            f"coordinator_address={coordinator_address!r}, num_processes=1"
        )
    return coordinator_address, num_processes, process_id


def initialize_processes(coordinator_address, num_processes, process_id):
    """Joins a multi-process run (no-op for one process). Must run before
    the backend does any computation."""
    import keras

    if num_processes == 1:
        _STATE.update(num_processes=1, process_id=0)
        return
    backend = keras.backend.backend()
    if backend != "jax":
        raise ValueError(
            "Multi-process pre-training (`num_processes` > 1) runs on the JAX "
            f"backend; this process runs {backend!r}. Set KERAS_BACKEND=jax "
            "(see guides/distributed_training.py for TensorFlow's "
            "MultiWorkerMirroredStrategy and PyTorch's DDP)."
        )
    import jax

    if not jax.distributed.is_initialized():  # else: a second run in this process
        keras.distribution.initialize(coordinator_address, num_processes, process_id)
    _STATE.update(num_processes=num_processes, process_id=process_id)


def process_count():
    return _STATE["num_processes"]


def process_index():
    return _STATE["process_id"]


def is_chief():
    """Whether this process writes the run's files (process 0)."""
    return _STATE["process_id"] == 0


def barrier(name):
    """Waits until every process reached the barrier `name`."""
    if process_count() == 1:
        return
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


@contextlib.contextmanager
def gathered_variables(model):
    """For saving in a multi-process run; all processes must enter it.

    Within it, every variable of `model` (and its optimizer) that is sharded
    over several processes holds its whole value in this process (gathered,
    a collective), and no distribution is set: Keras' `save_weights` creates
    a throw-away optimizer, whose variables would otherwise be placed on
    every process' devices, a collective that the chief, saving alone,
    would wait on for ever.
    """
    if process_count() == 1:
        yield
        return
    import jax
    import keras
    from jax.experimental import multihost_utils

    variables = list(model.variables)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and optimizer.built:
        variables += list(optimizer.variables)
    swapped = []
    distribution = keras.distribution.distribution()
    try:
        for variable in variables:
            value = variable.value
            if (
                isinstance(value, jax.Array)
                and not value.is_fully_replicated
                and not value.is_fully_addressable
            ):
                whole = multihost_utils.process_allgather(value, tiled=True)
                swapped.append((variable, vars(variable)["_value"]))
                vars(variable)["_value"] = jax.numpy.asarray(whole)
        keras.distribution.set_distribution(None)
        yield
    finally:
        keras.distribution.set_distribution(distribution)
        for variable, value in swapped:
            vars(variable)["_value"] = value


def shard_batches(dataset, batch_size):
    """This process' share of every global batch of `dataset`: with N
    processes, process `i` gets rows `[i * b, (i + 1) * b)` of each batch of
    `batch_size`, `b = batch_size // N` (the whole dataset for one process).
    Keras assembles the global batch from the shares
    (`jax.make_array_from_process_local_data`)."""

    count = process_count()
    if count == 1:
        return dataset
    batches = int(dataset.cardinality())
    shares = dataset.rebatch(batch_size // count).shard(count, process_index())
    if batches >= 0:  # Keep the length known (Keras warns on unknown ends).
        shares = shares.apply(tf.data.experimental.assert_cardinality(batches))
    return shares


def make_distribution(keras, model_parallel):
    """DataParallel over all devices, or ModelParallel on a `batch x model` mesh.

    With several processes, `keras.distribution.list_devices()` lists every
    process' devices (process 0's first): a `BxM` mesh whose `M` divides the
    devices of one process keeps each model replica inside a process.
    """
    devices = keras.distribution.list_devices()
    if not model_parallel:
        distribution = keras.distribution.DataParallel(devices=devices)
        # `shard_batches` feeds each process its share of the batches.
        distribution.auto_shard_dataset = False
        return distribution
    from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone

    match = re.fullmatch(r"(\d+)x(\d+)", str(model_parallel).lower())
    if match is None:
        raise ValueError(
            f"`model_parallel` (--mesh) must be 'BxM', e.g. '2x4'. Received: {model_parallel!r}"
        )
    data, model = int(match.group(1)), int(match.group(2))
    if data * model != len(devices):
        raise ValueError(
            f"`--mesh {model_parallel}` needs {data * model} devices; found {len(devices)}."
        )
    local = len(devices) // process_count()
    if process_count() > 1 and local % model:
        raise ValueError(
            f"`--mesh {model_parallel}`: with {process_count()} processes of {local} "
            f"devices each, the model axis ({model}) must divide {local} so that "
            "each model replica stays inside one process."
        )
    mesh = keras.distribution.DeviceMesh((data, model), ["batch", "model"], devices)
    layout_map = UniLMv2Backbone.get_layout_map(mesh)
    distribution = keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")
    distribution.auto_shard_dataset = False
    return distribution
