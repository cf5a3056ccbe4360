"""The benchmark scripts run, and what they time is the same computation."""

import argparse
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))

import benchmark_generate  # noqa: E402


def test_generate_benchmark_times_equal_outputs():
    """Cached and uncached greedy generation, as the benchmark runs them,
    give the same tokens, and every figure it prints is a positive time."""
    args = argparse.Namespace(
        size="tiny", batch=2, source_length=16, new_tokens=6, beams=2,
        repeats=1, dtype="float32", threads=0,
    )
    result = benchmark_generate._measure(args)
    assert result["greedy"]["same_tokens"]
    for value in (*result["greedy"].values(), *result["beam"].values()):
        if not isinstance(value, bool):
            assert value > 0


def test_generate_benchmark_refuses_unknown_size():
    with pytest.raises(SystemExit):
        benchmark_generate.main(["--size", "huge"])
