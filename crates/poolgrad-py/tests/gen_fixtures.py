#!/usr/bin/env python3
"""Writes fixtures/random_cases.npz: PyTorch's results for cases.random_cases().

Needs torch and numpy (CI never runs this; it reads the committed file):

    python crates/poolgrad-py/tests/gen_fixtures.py
"""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cases  # noqa: E402


def main():
    torch.set_num_threads(1)
    arrays = {}
    for case in cases.random_cases():
        result = cases.torch_results(case, cases.inputs(case))
        for key, value in result.items():
            if isinstance(value, np.ndarray):
                stored = value.astype(np.int64 if key in cases.INTEGER_ARRAYS else np.float64)
                arrays[f"{case['name']}:{key}"] = stored
    os.makedirs(os.path.dirname(cases.RANDOM_FIXTURES), exist_ok=True)
    np.savez_compressed(cases.RANDOM_FIXTURES, torch_version=np.array(torch.__version__), **arrays)
    print(f"{cases.RANDOM_FIXTURES}: {len(cases.random_cases())} cases, torch {torch.__version__}")


if __name__ == "__main__":
    main()
