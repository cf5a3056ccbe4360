"""
Title: Distributed training of UniLMv2 with Keras 3
Author: keras-unilmv2 contributors
Description: Data-parallel and model-parallel PMLM pre-training with
    `keras.distribution` on JAX, and several processes on JAX, PyTorch and
    TensorFlow.
Accelerator: none needed (8 virtual CPU devices); the same code runs on GPUs/TPUs.

## Introduction

`keras.distribution` is Keras 3's API for spreading a model over several
accelerators. It is implemented for the JAX backend: a `DeviceMesh` names
the devices and the axes of a grid (here `"batch"` and `"model"`), a
`LayoutMap` says how every weight is split over that grid, and a
`Distribution` (`DataParallel` or `ModelParallel`) decides how the weights
are placed and how each batch is split when the model is built and
trained. The model code does not change.

This guide

1. fakes 8 devices on the CPU, so it runs on any machine,
2. builds a small UniLMv2 and its PMLM (pseudo-masked LM) pre-training task
   on a few hundred paragraphs of the Python documentation,
3. trains it data-parallel over the 8 devices,
4. trains it model-parallel on a 2x4 mesh with
   `UniLMv2Backbone.get_layout_map()` and prints where every weight lives,
5. says what to use on TensorFlow and PyTorch today.

Run it with `python guides/distributed_training.py`; set
`UNILMV2_GUIDE_QUICK=1` (or pass `--quick`) for a few steps only, as the
test suite does.
"""

"""
## Setup

The number of CPU devices is an XLA flag that must be set before JAX is
imported; so is the backend. On a machine with 8 GPUs you would skip the
flag: `keras.distribution.list_devices()` returns the GPUs.
"""

import os
import sys

os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import csv  # noqa: E402

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402  (tf.data and the preprocessor)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # run from a source checkout

import keras_unilmv2  # noqa: E402
from keras_unilmv2.utils.vocabulary import build_wordpiece_vocabulary  # noqa: E402

QUICK = os.environ.get("UNILMV2_GUIDE_QUICK", "") not in ("", "0") or "--quick" in sys.argv
STEPS = 4 if QUICK else 200
GLOBAL_BATCH = 16  # must divide by the data-parallel size (8, then 2)
SEQUENCE_LENGTH = 64

devices = keras.distribution.list_devices()
print(f"{len(devices)} devices: {devices}")

"""
## Data, tokenizer and preprocessing

Paragraphs of the Python documentation shipped with the guides. A small
WordPiece vocabulary is learned from them (a real run uses a preset's
vocabulary), and `UniLMv2PMLMPreprocessor` turns each batch of text into
the PMLM layout: the corrupted text, then `[P]` pseudo masks and the
original tokens of each factorization step, under the blockwise attention
mask. It runs inside `tf.data` on every backend.
"""

with open(os.path.join(HERE, "data", "pydocs_sections_train.tsv"), encoding="utf-8") as f:
    texts = [row["text"] for row in csv.DictReader(f, delimiter="\t")]
texts = texts[: 8 * GLOBAL_BATCH] if QUICK else texts
vocabulary = build_wordpiece_vocabulary(texts, vocabulary_size=1000 if QUICK else 4000)
tokenizer = keras_unilmv2.UniLMv2Tokenizer(vocabulary=vocabulary)
preprocessor = keras_unilmv2.UniLMv2PMLMPreprocessor(
    tokenizer, sequence_length=SEQUENCE_LENGTH, seed=0
)
dataset = (
    tf.data.Dataset.from_tensor_slices(texts)
    .repeat()
    .batch(GLOBAL_BATCH, drop_remainder=True)
    .map(preprocessor, num_parallel_calls=tf.data.AUTOTUNE)
    .prefetch(2)
)


def build_pmlm():
    """A small UniLMv2 with its PMLM task; called under a distribution.

    Every dimension that the layout map splits (`hidden_dim`,
    `intermediate_dim`) must divide by the size of the model axis (4 below).
    """
    keras.utils.set_random_seed(0)
    backbone = keras_unilmv2.UniLMv2Backbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=2,
        num_heads=4,
        hidden_dim=64,
        intermediate_dim=256,
        max_sequence_length=SEQUENCE_LENGTH,
    )
    pmlm = keras_unilmv2.UniLMv2PMLM(backbone)
    pmlm.compile(optimizer=keras.optimizers.AdamW(5e-4, weight_decay=0.01))
    return pmlm


"""
## Data parallelism

`DataParallel` keeps a full copy of every weight on every device and splits
each batch along its first dimension: with 8 devices and a global batch of
16, each device sees 2 examples, and the gradients are averaged across
devices. Everything built inside `distribution.scope()` (or after
`keras.distribution.set_distribution(distribution)`) is placed that way, and
`fit()` splits the batches itself.
"""

data_parallel = keras.distribution.DataParallel(devices=devices)
with data_parallel.scope():
    pmlm = build_pmlm()
    history = pmlm.fit(dataset, steps_per_epoch=STEPS, epochs=1, verbose=0)
print(f"data parallel: loss {history.history['loss'][-1]:.4f} after {STEPS} steps")

"""
## Model parallelism with the layout map

When a model does not fit one device, its weights are split too.
`UniLMv2Backbone.get_layout_map(mesh)` returns Megatron-style rules for a
mesh with a `"model"` axis: the query/key/value and feed-forward input
kernels are split by output columns, the attention-output and feed-forward
output kernels by input rows, the embedding tables by hidden columns (the
tied LM head reads the word table the same way), and the rest (LayerNorms,
the relative-position table, the pooler, the LM-head transform) is
replicated. The rules match whole weight paths (`re.fullmatch`), so they
also apply inside any task built on the backbone.

The mesh below is 2x4: the batch is split in 2, each weight in 4. Each
group of 4 devices holds one full copy of the model, a quarter on each.
"""

mesh = keras.distribution.DeviceMesh(
    shape=(2, 4), axis_names=("batch", "model"), devices=devices
)
layout_map = keras_unilmv2.UniLMv2Backbone.get_layout_map(mesh)
model_parallel = keras.distribution.ModelParallel(
    layout_map=layout_map, batch_dim_name="batch"
)
with model_parallel.scope():
    pmlm = build_pmlm()
    for weight in pmlm.weights:
        if weight.path.startswith(("token_embedding", "transformer_layer_0", "lm_head")):
            sharding = weight.value.sharding  # a jax.sharding.NamedSharding
            spec = tuple(sharding.spec)  # per dimension: mesh axis or None
            print(f"  {weight.path:58s} {str(tuple(weight.shape)):11s} {spec}")
    history = pmlm.fit(dataset, steps_per_epoch=STEPS, epochs=1, verbose=0)
print(f"model parallel: loss {history.history['loss'][-1]:.4f} after {STEPS} steps")

"""
Both runs start from the same weights (same seed) and see the same
batches. `tests/distribution/test_distributed_training.py` checks, step by
step, that the losses and trained weights of both distributions equal a
single-device run, for the PMLM, the seq2seq LM and the text classifier,
and that greedy generation gives the same tokens.

To pre-train from the command line with a distribution:
`python tools/pretrain_pmlm.py ... --mesh data` (data parallel over all
devices) or `--mesh 2x4` (this layout map on a `batch x model` mesh).

A few things to keep in mind:

- The global batch must divide by the size of the `"batch"` axis.
- `hidden_dim` and `intermediate_dim` must divide by the size of the
  `"model"` axis. The vocabulary is deliberately never split: JAX only
  splits dimensions that the axis divides, and BERT's 30522 ids do not
  divide by 4 or 8.
- Weights must be created under the distribution. To distribute a trained
  model, build it under the distribution and `load_weights()` (or
  `from_preset()`) there; assigned values keep their sharding.
- Dropout draws different random numbers on a sharded model, so runs with
  dropout agree in distribution, not bit for bit, with one device.

## Several processes (JAX)

One run can span several processes (hosts, or processes on one machine):
each calls `keras.distribution.initialize(coordinator, num_processes,
process_id)` before JAX does anything, then sets a distribution over
`keras.distribution.list_devices()`, which now lists every process' devices.
`tools/pretrain_pmlm.py` does this with three flags; start the same command
once per process (process 0 listens at the address):

```bash
ARGS="--input corpus/ --output my_preset/ --batch-size 32 --steps 1000"
python tools/pretrain_pmlm.py $ARGS --coordinator-address 127.0.0.1:9911 \
    --num-processes 2 --process-id 0 &
python tools/pretrain_pmlm.py $ARGS --coordinator-address 127.0.0.1:9911 \
    --num-processes 2 --process-id 1
```

- The mesh covers all processes' devices: `--mesh data` (the default with
  several processes) or `--mesh BxM`, whose model axis `M` must divide one
  process' device count (each model replica stays inside a process).
- `--batch-size` is the global batch: each process reads rows
  `[i * b, (i + 1) * b)` of every batch, `b = batch size / processes`
  (`keras_unilmv2.pretraining.distributed.shard_batches`), and Keras
  assembles the global batch (`jax.make_array_from_process_local_data`).
  The batches, and so the run, are the same as with one process.
- Process 0 alone writes the vocabulary, checkpoints, history and preset;
  the `--output` folder must be one all processes see. Weights sharded over
  processes are gathered first (every process takes part).
- Rerunning the command resumes every process from the same checkpoint;
  the number of processes may change between runs (the settings that must
  not change are in `training/checkpoints/run.json`).
- On CPU, JAX's collectives across processes use gloo (the default); on
  GPUs, NCCL.

`tests/distribution/test_multiprocess_pretraining.py` (slow) launches 2
processes on 127.0.0.1 and checks that their per-step losses, held-out
figures and final weights equal one process on the same global batches
(float32, 1e-5), across an interruption and resume.

## TensorFlow

`keras.distribution` is a prototype on the TensorFlow backend (Keras 3.15
marks it "do not use"). Use `tf.distribute` instead: build and compile the
model inside a strategy's scope and pass a `tf.data.Dataset` to `fit()`:

```python
strategy = tf.distribute.MirroredStrategy()  # all local GPUs
with strategy.scope():
    pmlm = build_pmlm()
pmlm.fit(dataset, steps_per_epoch=STEPS)
```

This is data parallelism only (`MirroredStrategy` on one machine,
`MultiWorkerMirroredStrategy` across processes or machines, `TPUStrategy`).
`tools/pretrain_pmlm.py` runs several TensorFlow processes with
`MultiWorkerMirroredStrategy`, with the same flags as on JAX and PyTorch:

```bash
ARGS="--input corpus/ --output my_preset/ --batch-size 32 --steps 1000"
KERAS_BACKEND=tensorflow python tools/pretrain_pmlm.py $ARGS \
    --coordinator-address 127.0.0.1:9911 --num-processes 2 --process-id 0 &
KERAS_BACKEND=tensorflow python tools/pretrain_pmlm.py $ARGS \
    --coordinator-address 127.0.0.1:9911 --num-processes 2 --process-id 1
```

On one host the workers listen at the coordinator's port and the next
ones (9911, 9912); across machines set `TF_CONFIG` in every process (its
worker count and index must match `--num-processes` and `--process-id`).
It keeps Keras' own `fit` (callbacks, checkpoints, resume), with the
model built in the strategy's scope, but Keras 3.15's `fit` does not work
under this strategy as it is: it builds the model by `strategy.reduce`
of the first distributed batch, and reduces each step's scalar figures
along an axis 0 they do not have. `prepare_model` (in
`keras_unilmv2.pretraining.distributed`) therefore builds the losses, metrics and optimizer from the
batch structure itself, and sets a train/test function that runs
`train_step` in every replica and reads the metrics in the cross-replica
context (Keras' metric variables are on-read sums: the read sums them
over the workers). Each output's loss is the worker's weighted sum over
the *global* sum of the weights (a replica all-reduce), so the summed
gradients are the global batch's; they are summed before Keras'
optimizer clips them (`clipnorm`), which would otherwise clip each
worker's gradient apart. Each process reads its own share of every
global batch (`distribute_datasets_from_function`, no re-sharding). With
`--dropout 0` a 2-process run equals one process on the same global
batches (`test_two_tensorflow_processes_match_one_and_resume`, slow:
per-step losses and final weights within 1e-5, across an interruption
and resume); the processes draw their dropout masks apart otherwise.
`--gradient-accumulation-steps` > 1 is refused with several TensorFlow
processes: Keras 3.15's optimizer accumulates inside a `cond` whose
branches sync the workers (`merge_call`), which `tf.distribute` refuses.
A custom `strategy.run` loop works too
(`test_tf_multi_worker_custom_step_two_workers_match_one`,
`tests/distribution/mwms_worker.py`). The test
suite checks that the PMLM under `MirroredStrategy` (2 logical CPUs)
trains exactly like one device. There is no model parallelism for Keras 3
models on TensorFlow.

## PyTorch

Keras 3.15 has no `keras.distribution` implementation for PyTorch, and
`fit()` runs on one device. `tools/pretrain_pmlm.py` runs several PyTorch
processes with the same flags as on JAX:

```bash
ARGS="--input corpus/ --output my_preset/ --batch-size 32 --steps 1000"
KERAS_BACKEND=torch python tools/pretrain_pmlm.py $ARGS \
    --coordinator-address 127.0.0.1:9911 --num-processes 2 --process-id 0 &
KERAS_BACKEND=torch python tools/pretrain_pmlm.py $ARGS \
    --coordinator-address 127.0.0.1:9911 --num-processes 2 --process-id 1
```

It keeps Keras' `fit` (and so the callbacks, checkpoints and resume of
one process) and makes it data-parallel with `torch.distributed` (gloo on
CPU, NCCL on GPUs;
`keras_unilmv2.pretraining.distributed.prepare_model`): process 0's initial weights are broadcast; each
process trains on its share of every global batch; each output's loss is
`N * sum(w * loss) / global sum(w)` over `N` processes, so its mean over
the processes is the one-process loss of the global batch; the optimizer
averages every gradient over the processes (one all-reduce per batch,
before clipping and the update, as `DistributedDataParallel` does); and
the metrics Keras logs are summed over the processes. Process 0 alone
writes the files; a rerun resumes every process from the same checkpoint.
The processes draw their dropout masks apart (as under DDP), so a run
equals one process bit for bit (to float32 rounding) only with
`--dropout 0`, which the slow test
`test_two_torch_processes_match_one_and_resume` checks (2 processes on
127.0.0.1 against 1: per-step losses and final weights within 1e-5,
across an interruption and resume).

For a training loop of your own, wrap the Keras model (a `torch.nn.Module` on this backend) in
`torch.nn.parallel.DistributedDataParallel`, one process per GPU, as in the
keras.io guide "Multi-GPU distributed training with PyTorch":

```python
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}",
                        world_size=world, rank=rank)  # "nccl" on GPUs
pmlm(x)                   # build: the variables exist
pmlm._track_variables()   # ...and are the module's parameters (the table
                          # Keras made at compile time, before them, is stale)
ddp = DistributedDataParallel(pmlm, find_unused_parameters=True)
optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1)
for x, y, w in local_batches:  # this rank's rows of every global batch
    optimizer.zero_grad()
    outputs = ddp(x)
    loss = 0.0
    for name in ("ae", "par"):
        total = w[name].sum()
        dist.all_reduce(total)  # the global weight total
        ce = F.cross_entropy(outputs[name].flatten(0, 1), y[name].flatten(),
                             reduction="none")
        loss = loss + (ce * w[name].flatten()).sum() / total
    (loss * world).backward()  # DDP averages the gradients over ranks
    optimizer.step()
del ddp, optimizer  # they hold the process group: release it first,
gc.collect()        # while every rank is still up (else a rank whose
dist.barrier()      # peers exited can hang on exit)
dist.destroy_process_group()
```

`find_unused_parameters=True` because the pooler takes no part in the PMLM
loss. Dividing by the *global* weight total (and scaling by the number of
ranks) makes the loss the one-process PMLM loss: the slow test
`test_torch_ddp_two_ranks_match_one` (`tests/distribution/ddp_worker.py`)
checks that 2 ranks on 127.0.0.1 train exactly like 1 (losses and weights
within 1e-5). Model parallelism (FSDP, tensor
parallelism) of Keras models on PyTorch is not supported by Keras.
"""

print("guide finished")
