"""One process of the two-process run in ``test_distributed.py`` (a coordinator on 127.0.0.1, two
CPU devices per process, gloo collectives between processes)::

    python -m tests.loops.multiprocess_worker <process_id> <num_processes> <port> <out_dir>

Each process writes only its own rows: ``metrics.process<i>.csv`` (its seeds of a tiny TD3 run),
``grid.process<i>.npz`` (its cells of a hyperparameter x seed grid); process 0 also writes
``gathered.npz`` (every seed's metrics, gathered); every process writes ``done.process<i>.json``.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from purerl.loops import distributed

DEVICES_PER_PROCESS = 2
NUM_SEEDS = 8


def tiny_train():
    """The TD3 run both this worker and the test's one-process reference train."""
    from purerl import envs
    from purerl.agents import td3
    from purerl.loops import online

    env = envs.make("probe4_continuous")
    algo = td3.make(td3.Config(hidden=(8, 8)), env.spec)
    cfg = online.Config(
        total_steps=200, warmup_steps=50, eval_every=100, batch_size=8, buffer_size=200,
        eval_episodes=2,
    )  # fmt: skip
    return online.make_train(algo, env, cfg)


def toy_grid_train(key, hp, data):
    """A grid cell without an agent (compiles in a blink): uses the key, the setting and the
    replicated shared argument, so a wrong shard of any of them changes the row."""
    import jax
    import jax.numpy as jnp

    x = hp["a"] * jnp.sum(data) + jax.random.uniform(key, (2,))
    return x, {"env_steps": jnp.array([1, 2]), "x": x}


def main(process_id: int, num_processes: int, port: int, out: str) -> None:
    distributed.initialize(
        f"127.0.0.1:{port}",
        num_processes,
        process_id,
        num_cpu_devices=DEVICES_PER_PROCESS,
        timeout_s=60,
    )
    import jax
    import jax.numpy as jnp

    from purerl.loops import NonFiniteError, run_grid, run_seeds, writers
    from purerl.loops.common import run_periods

    assert jax.process_count() == num_processes
    assert jax.device_count() == num_processes * DEVICES_PER_PROCESS, jax.devices()
    done = {"process": process_id, "local_devices": [d.id for d in jax.local_devices()]}

    # A hyperparameter x seed grid with a shared argument, every cell on one device of 4.
    hparams = {"a": jnp.array([1.0, 10.0])}
    _, m = run_grid(toy_grid_train, jax.random.key(1), hparams, 4, args=(jnp.arange(3.0),))
    cells, mine = distributed.local_rows(m, axes=2)
    np.savez(os.path.join(out, f"grid.process{process_id}.npz"), index=cells, x=mine["x"])

    # A non-finite seed on one process is raised on every process, naming the same seed.
    def bad(key):
        step = jnp.where(jax.random.key_data(key)[0] == bad_word, 3, -1)
        return key, {"env_steps": jnp.array([1, 2]), "check/nonfinite_step": jnp.array([-1, step])}

    bad_word = jax.random.key_data(jax.random.split(jax.random.key(2), 4)[3])[0]
    try:
        run_seeds(bad, jax.random.key(2), 4)
        done["nonfinite"] = "not raised"
    except NonFiniteError as e:
        done["nonfinite"] = str(e)

    # What must not silently go wrong: keys that differ between processes, seeds that do not divide
    # over all devices (raised on both processes, which stay in step), run_periods.
    def toy(key):
        return key, {"env_steps": jnp.array([1]), "x": jax.random.uniform(key, (1,))}

    for name, call in [
        ("different_keys", lambda: run_seeds(toy, jax.random.key(process_id), 4)),
        ("uneven", lambda: run_seeds(toy, jax.random.key(0), 6)),
        ("run_periods", lambda: run_periods(None, jax.random.key(0), 4, 1)),
    ]:
        try:
            call()
            done[name] = "not raised"
        except (AssertionError, ValueError) as e:
            done[name] = f"{type(e).__name__}: {e}"[:300]

    # The real thing: a tiny TD3 over 8 seeds, each process writing its own seeds' rows.
    states, metrics = run_seeds(tiny_train(), jax.random.key(0), NUM_SEEDS)
    seeds, rows = distributed.local_rows(metrics)
    writers.write_csv(os.path.join(out, f"metrics.process{process_id}.csv"), rows, seeds=seeds)
    done["seeds"] = seeds.tolist()
    done["state_devices"] = len(states.agent.step.sharding.device_set)
    everything = distributed.gather(metrics)  # a collective: both processes call it
    if process_id == 0:
        np.savez(os.path.join(out, "gathered.npz"), **everything)
    with open(os.path.join(out, f"done.process{process_id}.json"), "w") as f:
        json.dump(done, f)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
