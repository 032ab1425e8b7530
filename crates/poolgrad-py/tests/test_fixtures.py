"""Every function of the NumPy API against committed PyTorch results (no torch needed):
the Rust tests' PyTorch fixtures and the random cases of ``gen_fixtures.py``."""

import numpy as np
import pytest

import cases

JSON_CASES = cases.json_cases()
RANDOM_CASES = cases.random_cases()
STORE = np.load(cases.RANDOM_FIXTURES)


def stored(case):
    prefix = case["name"] + ":"
    return {key[len(prefix):]: STORE[key] for key in STORE.files if key.startswith(prefix)}


def needs_bfloat16(case):
    if case["dtype"] == "bfloat16" and cases.BFLOAT16 is None:
        pytest.skip("bfloat16 arrays need ml_dtypes")


def test_the_fixtures_cover_every_operator():
    ops = {c["op"] for c in JSON_CASES + RANDOM_CASES}
    assert ops == {
        "max", "avg", "lp", "adaptive_max", "adaptive_avg", "global_max", "global_avg", "fractional_max", "unpool"
    }
    dtypes = {c["dtype"] for c in JSON_CASES + RANDOM_CASES}
    assert dtypes == {"float16", "bfloat16", "float32", "float64"}
    assert len(JSON_CASES) == 310


@pytest.mark.parametrize("case", JSON_CASES, ids=lambda c: c["name"])
def test_rust_fixture_case(case):
    needs_bfloat16(case)
    got = cases.numpy_results(case, case["arrays"])
    cases.check(case, got, case["arrays"])


@pytest.mark.parametrize("case", RANDOM_CASES, ids=lambda c: c["name"])
def test_random_case(case):
    needs_bfloat16(case)
    want = stored(case)
    assert want, f"{case['name']} is not in {cases.RANDOM_FIXTURES}: run gen_fixtures.py"
    got = cases.numpy_results(case, want)
    compared = cases.check(case, got, want)
    assert compared >= 3
