"""Shared bits of the benchmark scripts: a provenance header and result-file writing."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time

import jax

RESULTS = os.path.join(os.path.dirname(__file__), "results")


def provenance() -> str:
    """Command, date, JAX version, device and CPU of this run, as markdown lines."""
    try:
        cpu = subprocess.run(
            ["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        cpu = platform.processor()
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    script = ["-m", spec.name] if spec is not None and spec.name else sys.argv[:1]
    command = ["python", *script, *sys.argv[1:]]
    return (
        f"- command: `{' '.join(shlex.quote(a) for a in command)}`\n"
        f"- date: {time.strftime('%Y-%m-%d %H:%M')}\n"
        f"- jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}\n"
        f"- hardware: {cpu or platform.machine()}, {os.cpu_count()} CPU cores visible\n"
    )


def header(title: str, table_head: str) -> str:
    return f"## {title}\n\n{provenance()}\n{table_head}\n"


def append_rows(filename: str, head: str, rows: list[str]) -> str:
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, filename)
    with open(path, "a") as f:
        f.write(head + "\n".join(rows) + "\n\n")
    return path
