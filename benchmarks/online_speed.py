"""Env steps/s of the online off-policy loop (SAC, 1 seed under vmap, 1M-slot replay).

Measures one compiled run of ``loops.online`` (SAC at its defaults, inverted_pendulum on spring,
4,000 env steps with 1,000 warm-up steps, two evaluations of one episode) after compilation. To
compare two versions of purerl, run it against each tree, back to back on the same machine:

  git archive <commit> purerl | tar -x -C /tmp/old
  (cd /tmp && PYTHONPATH=/tmp/old python /path/to/benchmarks/online_speed.py)
  python -m benchmarks.online_speed

Prints one line; results are recorded by hand in benchmarks/results/offpolicy_notes.md.
"""

from __future__ import annotations

import time

import jax

from purerl import envs, loops
from purerl.agents import sac


def main() -> None:
    env = envs.make("inverted_pendulum", backend="spring")
    algo = sac.make(
        sac.Config(normalize_observations=False), env.spec
    )  # as recorded (pre issue-13 default)
    cfg = loops.online.Config(
        total_steps=4000, warmup_steps=1000, eval_every=2000, eval_episodes=1, buffer_size=1_000_000
    )
    run = jax.jit(jax.vmap(loops.online.make_train(algo, env, cfg)))
    keys = jax.random.split(jax.random.key(0), 1)
    t0 = time.perf_counter()
    compiled = run.lower(keys).compile()
    t1 = time.perf_counter()
    jax.block_until_ready(compiled(keys))
    t2 = time.perf_counter()
    print(
        f"compile {t1 - t0:.1f} s, run {t2 - t1:.1f} s: {cfg.total_steps / (t2 - t1):.0f} env steps/s "
        f"(SAC, 1 seed under vmap, 1M-slot replay, jax {jax.__version__})"
    )


if __name__ == "__main__":
    main()
