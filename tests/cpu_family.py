"""The CPU family that bit-level recordings are keyed by (tests/alignment/*): XLA's and Eigen's CPU
kernels differ with the vector units, so the same code rounds differently on AVX-512 Intel Xeons
than on the AMD EPYC machines the first recordings came from."""

from __future__ import annotations


def cpu_family() -> str:
    """``vendor/isa`` from /proc/cpuinfo, e.g. ``GenuineIntel/avx512``; ``unknown`` elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return "unknown"
    vendor = next((ln.split(":")[1].strip() for ln in lines if ln.startswith("vendor_id")), "?")
    flags = next((ln.split(":")[1].split() for ln in lines if ln.startswith("flags")), [])
    return f"{vendor}/{'avx512' if 'avx512f' in flags else 'avx2'}"


def lookup(recordings: dict, family: str | None = None):
    """The recording for this CPU: by ``vendor/isa``, else by vendor alone; ``None`` if neither."""
    family = family or cpu_family()
    return recordings.get(family, recordings.get(family.split("/")[0]))
