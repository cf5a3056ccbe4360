"""One rank of the PyTorch DDP check of `test_multiprocess_pretraining.py`:

    python tests/distribution/ddp_worker.py RANK WORLD PORT OUT.json

The Keras model is a `torch.nn.Module` on the PyTorch backend, so it is
wrapped in `torch.nn.parallel.DistributedDataParallel` (gloo on CPU) and
trained by a plain torch loop, as in keras.io's "Multi-GPU distributed
training with PyTorch": the tiny PMLM (`dist_worker._build("pmlm")`: seed
0, dropout 0) takes `dist_worker.STEPS` SGD(0.1) steps on the global batch
of `dist_worker.BATCH`, each rank on its `BATCH / WORLD` rows.

The loss is the PMLM's (per output, the weighted mean cross-entropy over
the *global* batch): each rank divides its weighted sum by the global
weight total (an all-reduce) and scales by WORLD, because DDP averages the
gradients over ranks. Rank 0 alone writes OUT.json: the per-step global
losses and the final weights.
"""

import gc
import json
import os
import sys

if __name__ == "__main__":
    os.environ["KERAS_BACKEND"] = "torch"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, HERE)
    sys.path.insert(0, os.path.dirname(HERE))
    sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))


def main(rank, world, port, out):
    import keras
    import numpy as np
    import torch
    import torch.distributed as dist

    import dist_worker

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=world, rank=rank
    )
    x, y, weights = keras.tree.map_structure(
        lambda t: np.asarray(keras.ops.convert_to_numpy(t)), dist_worker._pmlm_data()
    )
    share = dist_worker.BATCH // world
    rows = slice(rank * share, (rank + 1) * share)
    x = {k: torch.as_tensor(v[rows]) for k, v in x.items()}
    y = {k: torch.as_tensor(v[rows]).long() for k, v in y.items()}
    weights = {k: torch.as_tensor(v[rows]) for k, v in weights.items()}
    model = dist_worker._build("pmlm")
    model(x)  # built
    # Its variables as the module's parameters (a table Keras made when
    # the model was compiled, before the variables existed, is stale).
    model._track_variables()
    # Some weights (e.g. the pooler) take no part in the PMLM loss.
    ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1)
    losses = []
    for _ in range(dist_worker.STEPS):
        optimizer.zero_grad()
        outputs = ddp(x)
        loss = 0.0
        for name in ("ae", "par"):
            total = weights[name].sum()
            dist.all_reduce(total)  # the global weight total
            token = torch.nn.functional.cross_entropy(
                outputs[name].float().flatten(0, 1), y[name].flatten(), reduction="none"
            )
            loss = loss + (token * weights[name].flatten()).sum() / total
        (loss * world).backward()  # DDP averages the gradients over ranks
        optimizer.step()
        report = loss.detach().clone()
        dist.all_reduce(report)
        losses.append(float(report))
    if rank == 0:
        result = {
            "losses": losses,
            "weights": {w.path: np.asarray(keras.ops.convert_to_numpy(w)).tolist()
                        for w in model.weights},
        }
        with open(out, "w") as f:
            json.dump(result, f)
    # Teardown: the DDP wrapper holds the process group too, so it goes
    # first, while every rank is still up (the barrier); else the group's
    # last reference dies with `main`'s locals, after `destroy_process_group`,
    # and a rank whose peers have exited can hang there (3 runs of 22 did).
    del ddp, optimizer
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
