"""Where a trained policy's episodes end: one deterministic episode per seed of a ``purerl train`` run.

    python -m benchmarks.inspect_episodes runs/td3_ip            # the run's --out directory

Rebuilds the run's agent, env and loop from its ``config.json``, restores the final carry from its
``checkpoint/``, and for each seed plays one episode with the deterministic policy (the loop's
evaluation policy; the key is ``10 + seed``). Prints the episode length, the observation and action
of its last step, and the largest absolute value of each observation dimension over the episode:
enough to see *how* a policy fails (issue 13: TD3 on inverted_pendulum drives the cart into the end
of its rail, ``benchmarks/results/offpolicy_notes.md`` row 5). A diagnostic, not a learning result.
"""

from __future__ import annotations

import argparse
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from purerl import agents, envs
from purerl.loops import checkpoint, on_policy, online


def _config(cls, recorded: dict):
    """``cls`` from a config.json dict (JSON turned tuples into lists)."""
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items()})


def episodes(run_dir: str, max_steps: int | None = None) -> list[dict]:
    with open(os.path.join(run_dir, "config.json")) as f:
        run = json.load(f)
    module = agents.get(run["agent"])
    loop_module = {"online": online, "on_policy": on_policy}[run["loop"]]
    env = envs.make(run["env"], backend=run.get("backend"))
    algo = module.make(_config(module.Config, run["agent_config"]), env.spec)
    loop_config = _config(loop_module.Config, {**run["loop_config"], "progress": False})
    loop = loop_module.make_loop(algo, env, loop_config)
    keys = jax.random.split(jax.random.key(0), run["seeds"])
    carry = checkpoint.restore(
        os.path.join(run_dir, "checkpoint"), like=jax.eval_shape(jax.vmap(loop.init), keys)
    )
    steps = max_steps or env.spec.episode_length

    @jax.jit
    def play(agent, key):
        def step(c, _):
            state, alive = c
            action = algo.act(agent, state.obs, key, deterministic=True)
            action = action[0] if isinstance(action, tuple) else action
            nxt = env.step(key, state, action)
            ended = jnp.maximum(nxt.terminated, nxt.truncated)
            return (nxt, alive * (1 - ended)), (state.obs, action, alive)

        _, out = jax.lax.scan(step, (env.reset(key), jnp.float32(1)), None, steps)
        return out

    rows = []
    for seed in range(run["seeds"]):
        agent = jax.tree.map(lambda x, s=seed: x[s], carry.agent)
        obs, act, alive = (
            np.asarray(x, np.float64) for x in play(agent, jax.random.key(10 + seed))
        )
        length = int(alive.sum())
        last = max(length - 1, 0)
        rows.append(
            {
                "seed": seed,
                "length": length,
                "last_obs": obs[last].round(3).tolist(),
                "last_action": act[last].round(3).tolist(),
                "max_abs_obs": np.abs(obs[: max(length, 1)]).max(0).round(3).tolist(),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="the --out directory of a purerl train run")
    parser.add_argument("--max-steps", type=int, default=None, help="default: the env's episode")
    args = parser.parse_args()
    for row in episodes(args.run_dir, args.max_steps):
        print(
            f"seed {row['seed']}: length {row['length']}; last obs {row['last_obs']}, "
            f"action {row['last_action']}; max |obs| per dimension {row['max_abs_obs']}"
        )


if __name__ == "__main__":
    main()
