"""Bit-level recordings and the machines they hold on (tests/agents/test_td3_identity.py,
tests/loops/test_rewarder.py, tests/alignment/*).

XLA:CPU compiles for the host CPU (its vector width, FMA units and LLVM target), so the same code
rounds float32 differently in the last bits on different CPU models: the AMD EPYC recordings of these
tests held on some EPYC machines and not on others (CI on 2026-12-08: 16 tests off by 1-2 ulp, e.g.
``-57.035622`` against ``-57.035618``). A recording therefore has two uses:

* on the machine that made it (recordings keyed by :func:`machine`, each made from the old code on
  its machine), every number must be equal bit for bit;
* on any other machine, every float must agree within :data:`RTOL` / :data:`ATOL`, which absorbs
  the last-bit rounding of a few updates (observed: relative differences up to 2e-7) and nothing
  more: a change of arithmetic (an optimizer's eps or warm-up, a loss term, a key split) moves these
  numbers by far more (tests/alignment/test_recorded_identity.py checks that a 1% change of a
  learning rate fails it).
  Integers (PRNG key data, counters) are always compared exactly. A long chain that samples
  discrete tokens (tests/alignment/test_pipeline.py) turns round-off into changes beyond any such
  tolerance, so it is skipped on a machine without a recording of its own.

The machines with their own recordings: ``AuthenticAMD/25/1/avx2`` (AMD EPYC Zen 3, the CI and
session machines of 2026-12-08, under tests/conftest.py's XLA flags), besides the first AMD EPYC
(model not recorded) and an Intel Xeon (AVX-512), recorded before the suite compiled at -O0, whose
recordings serve as the nearest ones elsewhere.
"""

from __future__ import annotations

import numpy as np

# The jax version the recordings were made with: bit equality needs the same XLA too.
RECORDED_JAX = "0.10.2"
RTOL = 1e-5
ATOL = 1e-6


def _cpuinfo() -> dict[str, str]:
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().split("\n\n")[0].splitlines()
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}


def cpu_family() -> str:
    """``vendor/isa`` from /proc/cpuinfo, e.g. ``GenuineIntel/avx512``; ``unknown`` elsewhere."""
    info = _cpuinfo()
    if not info:
        return "unknown"
    isa = "avx512" if "avx512f" in info.get("flags", "").split() else "avx2"
    return f"{info.get('vendor_id', '?')}/{isa}"


def machine() -> str:
    """``vendor/cpu family/model/isa``, e.g. ``AuthenticAMD/25/1/avx2``: the finest name /proc/cpuinfo
    gives of what XLA compiles for (model names are masked on the cloud machines here)."""
    info = _cpuinfo()
    if not info:
        return "unknown"
    vendor, isa = cpu_family().split("/")
    return f"{vendor}/{info.get('cpu family', '?')}/{info.get('model', '?')}/{isa}"


def pick(recordings: dict) -> tuple:
    """``(recording, exact)``: this machine's own recording and ``True`` (with the jax that made
    it), else the nearest one (same ``vendor/isa``, same vendor, else the first) and ``False``.
    Keys are :func:`machine` names, :func:`cpu_family` names or vendors."""
    import jax

    here = machine()
    if here in recordings:
        return recordings[here], jax.__version__ == RECORDED_JAX
    family = cpu_family()
    for key in (family, family.split("/")[0]):
        if key in recordings:
            return recordings[key], False
    return next(iter(recordings.values())), False


def assert_recorded(actual, desired, exact: bool, err_msg: str = "") -> None:
    """``actual`` equals the recording ``desired``: bit for bit if ``exact`` (this machine's own
    recording, :func:`pick`), else within :data:`RTOL` / :data:`ATOL` for floats; integers exactly."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    if exact or not np.issubdtype(desired.dtype, np.floating):
        np.testing.assert_array_equal(actual, desired, err_msg=err_msg)
    else:
        assert actual.shape == desired.shape and actual.dtype == desired.dtype, err_msg
        np.testing.assert_allclose(actual, desired, rtol=RTOL, atol=ATOL, err_msg=err_msg)
