"""Shared pieces of the benchmark scripts: model sizes, the common
command line, and the driver that runs one subprocess per backend."""

import argparse
import json
import os
import subprocess
import sys

BACKENDS = ("tensorflow", "jax", "torch")

# Matched sizes for UniLMv2 and its keras-hub peers.
SIZES = {
    "small": dict(num_layers=4, num_heads=4, hidden_dim=256, intermediate_dim=1024),
    "base": dict(num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072),
}
# The step arguments every train/predict step benchmark takes.
STEP_ARGUMENTS = ("size", "batch", "length", "steps", "warmup", "dtype")


def vocabulary_size(size):
    """BERT's vocabulary at base size, a smaller one below it."""
    return 30522 if size == "base" else 8192


def step_parser(doc, steps, warmup):
    """The command line of a step benchmark: `--backend`, `--size`,
    `--batch`, `--length`, `--steps`, `--warmup`, `--dtype`."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--backend", default="all", help="'all' or 'current'")
    parser.add_argument("--size", default="small", choices=sorted(SIZES))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    return parser


def run(script, args, measure, print_row, header, forwarded=STEP_ARGUMENTS):
    """`--backend current`: measure here and print `header` and one row (or,
    with `--json`, the result for the parent process); otherwise print
    `header` and run the script once per backend."""
    if args.backend == "current":
        result = measure(args)
        if args.json:
            print("RESULT " + json.dumps(result))
        else:
            print(header)
            print_row(result)
        return 0
    print(header)
    return run_per_backend(script, args, forwarded, print_row)


def run_per_backend(script, args, forwarded, print_row):
    """Runs `script --backend current --json` once per Keras backend.

    Args:
        script: path of the benchmark script.
        args: its parsed `argparse.Namespace`.
        forwarded: attribute names of the arguments to pass on (as
            `--name=value`, underscores written as dashes).
        print_row: called with each backend's result dict.

    Returns:
        0, or 1 if a backend failed (its stderr is printed).
    """
    for backend in BACKENDS:
        command = [sys.executable, os.path.abspath(script), "--backend", "current", "--json"]
        command += [f"--{name.replace('_', '-')}={getattr(args, name)}" for name in forwarded]
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode or not lines:
            print(f"{backend}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
        print_row(json.loads(lines[-1][len("RESULT "):]))
    return 0
