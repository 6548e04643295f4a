"""Seeds and hyperparameter grids sharded over many devices and many processes: 8 fake CPU devices
in one process, and two real processes (a coordinator on 127.0.0.1, gloo CPU collectives)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl.loops import distributed, run_grid, run_seeds, writers
from purerl.loops.common import grid_mesh_shape
from tests.loops import multiprocess_worker as worker

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Sharded and unsharded runs are the same computation on different batch sizes per device; XLA:CPU
# may then vectorize a reduction differently, so rows agree to float32 rounding, not bit for bit.
RTOL, ATOL = 1e-5, 1e-6


def cpu_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "JAX_NUM_CPU_DEVICES"}
    return dict(env, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, **extra)


def wait_all(procs: list[subprocess.Popen], deadline: float) -> None:
    """Wait for every process until ``deadline``; kill the ones still running (no orphans)."""
    try:
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_grid_mesh_shape():
    assert grid_mesh_shape(2, 4, 8) == (2, 4)
    assert grid_mesh_shape(3, 8, 8) == (1, 8)
    assert grid_mesh_shape(4, 2, 8) == (4, 2)
    assert grid_mesh_shape(4, 3, 8) is None
    assert grid_mesh_shape(5, 5, 1) == (1, 1)


def test_one_process_local_rows_and_gather_are_everything():
    m = {"env_steps": np.array([[1, 2], [1, 2], [1, 2]]), "x": np.arange(6.0).reshape(3, 2)}
    seeds, mine = distributed.local_rows(m)
    np.testing.assert_array_equal(seeds, [0, 1, 2])
    np.testing.assert_array_equal(mine["x"], m["x"])
    cells, mine = distributed.local_rows({"x": jnp.zeros((2, 3, 4))}, axes=2)
    assert cells.shape == (6, 2) and mine["x"].shape == (6, 4)
    np.testing.assert_array_equal(cells[:3], [[0, 0], [0, 1], [0, 2]])
    np.testing.assert_array_equal(distributed.gather(m)["x"], m["x"])
    assert not distributed.is_multiprocess()


def test_run_grid_is_the_nested_vmap_with_shared_args():
    hparams = {"a": jnp.array([1.0, 10.0, 100.0])}
    _, m = run_grid(worker.toy_grid_train, jax.random.key(1), hparams, 2, args=(jnp.ones(3),))
    assert m["x"].shape == (3, 2, 2)
    keys = jax.random.split(jax.random.key(1), 2)
    for h, a in enumerate([1.0, 10.0, 100.0]):
        for s in range(2):
            x, _ = worker.toy_grid_train(keys[s], {"a": jnp.float32(a)}, jnp.ones(3))
            np.testing.assert_allclose(m["x"][h, s], x, rtol=1e-6)
    with pytest.raises(ValueError, match="leading axis"):
        run_grid(worker.toy_grid_train, jax.random.key(1), {"a": 1.0}, 2)


# The sharded grid is checked across two processes below (each holds one setting) and, on 1-8
# fake devices, by benchmarks/multidevice.py (its "max diff vs 1x1" column); a separate 8-device
# grid test cost ~90 s of CPU in a suite that must stay under 20 minutes.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # three TD3 compiles side by side (~100 s of CPU with pytest start-up)
def test_two_processes_each_write_their_own_rows_and_match_one_process(tmp_path):
    logs = [open(tmp_path / f"log.process{i}.txt", "w+") for i in range(2)]  # noqa: SIM115
    port = str(free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.loops.multiprocess_worker", str(i), "2", port, tmp_path],
            cwd=ROOT,
            env=cpu_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for i, log in enumerate(logs)
    ]
    try:  # the one-process reference compiles here while the two processes compile theirs
        _, ref = run_seeds(worker.tiny_train(), jax.random.key(0), worker.NUM_SEEDS)
        keys = jax.random.split(jax.random.key(1), 4)
        grid_ref = [[worker.toy_grid_train(k, {"a": a}, jnp.arange(3.0))[0] for k in keys]
                    for a in (1.0, 10.0)]  # fmt: skip
    finally:
        wait_all(procs, time.monotonic() + 400)
    text = []
    for log in logs:
        log.seek(0)
        text.append(log.read()[-3000:])
        log.close()
    assert [p.returncode for p in procs] == [0, 0], "\n\n".join(text)

    done = [json.loads((tmp_path / f"done.process{i}.json").read_text()) for i in range(2)]
    # Process i drives global devices 2i, 2i+1 and so seeds 4i..4i+3 of 8; the state spans all 4.
    assert [d["seeds"] for d in done] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert all(d["state_devices"] == 4 for d in done)
    # Seed 3 (process 1's) went non-finite: both processes raised, naming it.
    for d in done:
        assert "env step 3 of seed 3" in d["nonfinite"], d["nonfinite"]
        assert d["different_keys"].startswith("AssertionError: run_seeds: the key differs")
        assert d["uneven"].startswith("ValueError: 6 seeds cannot be split evenly over 4 devices")
        assert d["run_periods"].startswith("ValueError: run_periods runs on one process")

    parts = [writers.read_csv(tmp_path / f"metrics.process{i}.csv") for i in range(2)]
    union = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    np.testing.assert_array_equal(union["seed"][:, 0], np.arange(worker.NUM_SEEDS))
    assert set(union) == {*ref, "seed"}
    for k in ref:
        np.testing.assert_allclose(union[k], ref[k], rtol=RTOL, atol=ATOL, err_msg=k)
    gathered = np.load(tmp_path / "gathered.npz")
    for k in ref:  # gather() brings process 1's rows to process 0 exactly as process 1 wrote them
        np.testing.assert_array_equal(gathered[k], union[k], err_msg=k)

    grid = [np.load(tmp_path / f"grid.process{i}.npz") for i in range(2)]
    # A 2 x 4 grid on 4 devices as a 2 x 2 mesh: process i holds hyperparameter setting i.
    for i, g in enumerate(grid):
        np.testing.assert_array_equal(g["index"], [[i, s] for s in range(4)])
        np.testing.assert_allclose(g["x"], np.asarray(grid_ref[i]), rtol=1e-6)
