"""core/jsonio.py: every JSON purerl writes is valid JSON (no NaN / Infinity tokens)."""

import json
import math

import numpy as np
import pytest

from purerl.core import jsonio


def _strict(text: str):
    def reject(token):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=reject)


def test_nonfinite_floats_become_null_and_are_listed():
    obj = {
        "a": float("nan"),
        "b": [1.0, np.float32("inf"), (2, -math.inf)],
        "c": {"d": np.array([0.5, np.nan])},
        "e": np.int64(3),
        "ok": "x",
    }
    got = _strict(jsonio.dumps(obj))
    assert got == {
        "a": None,
        "b": [1.0, None, [2, None]],
        "c": {"d": [0.5, None]},
        "e": 3,
        "ok": "x",
        jsonio.NOTE_KEY: ["/a", "/b/1", "/b/2/1", "/c/d/1"],
    }
    assert jsonio.dumps({"x": 1.5}) == json.dumps({"x": 1.5}, indent=2)  # no note when all finite


def test_a_nan_that_slips_past_raises_instead_of_writing_invalid_json(tmp_path):
    class Odd:
        pass

    with pytest.raises(ValueError, match="Out of range float"):
        jsonio.dumps({"x": Odd()}, default=lambda v: float("nan"))
    path = jsonio.write(tmp_path / "f.json", {"x": [float("nan")]})
    assert _strict(open(path).read()) == {"x": [None], jsonio.NOTE_KEY: ["/x/0"]}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temporary file left
