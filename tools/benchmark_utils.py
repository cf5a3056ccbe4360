"""Shared driver of the benchmark scripts: one subprocess per backend."""

import json
import os
import subprocess
import sys

BACKENDS = ("tensorflow", "jax", "torch")


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
