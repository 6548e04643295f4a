"""purerl's PPO and SAC side by side with Brax's own trainers, same env, backend and settings.

For each pair (algorithm, env) three arms run with the same settings (Brax's trainer settings for
that pair, mapped onto purerl's configs; every setting that still differs is listed in the results):

* ``brax``: ``brax.training.agents.ppo`` / ``.sac`` (brax 0.14.2), one seed after another, eval
  curves recorded with wall time through Brax's ``progress_fn``. Benchmark-only: brax.training
  needs a small shim on our JAX (:mod:`benchmarks._brax_shim`); purerl never imports it.
* ``purerl-vmap``: all seeds vmapped in one compiled program (``purerl.loops.common.run_periods``,
  the path of ``purerl train``: the same results as ``run_seeds``, one period per call so the wall
  time at each evaluation is read on the host).
* ``purerl-1``: one seed at a time, no vmap (``jit(loop.init)``, ``jit(loop.run(carry, 1))``), the
  fair wall-time comparison with Brax's single-seed trainer. Seed ``i`` uses the key of seed ``i``
  of the vmapped run, so both arms should give nearly the same curves.

Reported per pair: eval return (deterministic policy, the same number of episodes on both sides)
vs env steps and vs wall time (including compilation), env steps and wall time to the threshold,
steady-state env steps/s, and the ratios purerl / brax. Raw curves: ``results/peers/<pair>.json``;
plots ``results/peers/<pair>.png``; table ``results/peers.md`` (rebuilt from every JSON present).

Usage (from the repository root):
  python -m benchmarks.peers                          # ppo-ip and sac-ip, 5 seeds each
  python -m benchmarks.peers --only sac-hc            # the optional SAC halfcheetah pair
  python -m benchmarks.peers --only ppo-ip --seeds 2 --arms brax,purerl-1
  python -m benchmarks.peers --quick                  # tiny end-to-end check -> peers_quick.md
  python -m benchmarks.peers --summary                # rebuild the table from the JSONs
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import time
from typing import Any

import numpy as np

from benchmarks import _brax_shim
from benchmarks._common import RESULTS, provenance

ARMS = ("brax", "purerl-vmap", "purerl-1")
NETS_SUFFIX = "-brax-default-nets"  # results file of a pair run with --brax-default-nets


@dataclasses.dataclass(frozen=True)
class Pair:
    """One (algorithm, env) comparison. ``settings`` uses Brax's trainer argument names; eval
    points are multiples of ``eval_every`` up to ``eval_every * num_evals`` env steps."""

    algo: str  # "ppo" or "sac"
    env: str
    backend: str
    threshold: float  # eval return counted as "solved" for time-to-threshold
    eval_every: int  # env steps between evaluations (both sides evaluate at the same steps)
    num_evals: int
    settings: dict  # Brax trainer kwargs (and "hidden": the network sizes both sides use)
    source: str  # where the settings come from
    brax_default_nets: bool = False  # Brax keeps its own default network sizes (not matched)

    @property
    def total_steps(self) -> int:
        return self.eval_every * self.num_evals


# Brax's published inverted_pendulum PPO settings (brax's training colab: reward_scaling 10,
# normalize_observations, unroll 5, 4 updates per batch, discount 0.97, lr 3e-4, entropy 1e-2,
# 2048 envs, batch 1024, 32 minibatches), scaled to 2 CPU cores as in
# shared/reference/cpu_feasibility.md section 3 (256 envs, batch 256, 16 minibatches), where Brax
# solved it (1000) at 184k steps. Clip 0.3 and GAE lambda 0.95 are brax.training's defaults.
PPO_IP = Pair(
    algo="ppo",
    env="inverted_pendulum",
    backend="generalized",
    threshold=950.0,
    eval_every=20_480,  # one Brax training step: batch 256 * unroll 5 * 16 minibatches
    num_evals=24,  # 491,520 env steps
    settings=dict(
        num_envs=256,
        batch_size=256,
        unroll_length=5,
        num_minibatches=16,
        num_updates_per_batch=4,
        learning_rate=3e-4,
        entropy_cost=1e-2,
        discounting=0.97,
        gae_lambda=0.95,
        clipping_epsilon=0.3,
        reward_scaling=10.0,
        normalize_observations=True,
        episode_length=1000,
        num_eval_envs=16,
        hidden=(64, 64),  # the same sizes on both sides (purerl PPO's default, PPO paper)
    ),
    source="brax colab inverted_pendulum PPO preset scaled to CPU (cpu_feasibility.md sec. 3)",
)

# SAC on inverted_pendulum: the settings of the issue-13 measurement in which Brax's SAC balanced
# the pole from 11k steps on (8 envs, one update per env step, batch 256, lr 3e-4, observation
# normalization), with Brax's published SAC warm-up (min_replay_size 8192, its hopper/walker2d
# presets) and the SAC paper's discount 0.99; tau 0.005 is brax.training's default.
SAC_IP = Pair(
    algo="sac",
    env="inverted_pendulum",
    backend="generalized",
    threshold=950.0,
    eval_every=1024,
    num_evals=30,  # 30,720 env steps, the first 8,192 warm-up
    settings=dict(
        num_envs=8,
        grad_updates_per_step=8,  # per actor step of 8 envs: 1 update per env step
        batch_size=256,
        learning_rate=3e-4,
        discounting=0.99,
        tau=0.005,
        reward_scaling=1.0,
        normalize_observations=True,
        min_replay_size=8192,
        max_replay_size=30_720,  # Brax's default (= num_timesteps); purerl gets the same size
        episode_length=1000,
        num_eval_envs=16,
        hidden=(256, 256),  # Brax's and purerl's SAC default
    ),
    source="issue 13's Brax SAC run (8 envs, UTD 1, batch 256, lr 3e-4, obs norm) + Brax's "
    "published SAC warm-up 8192",
)

# SAC halfcheetah (optional, long): Brax's published SAC preset (hopper/walker2d: lr 6e-4, discount
# 0.997, reward_scaling 30, normalize_observations, min_replay_size 8192) at the CPU scale of
# cpu_feasibility.md section 3 (32 envs, 16 updates per actor step, batch 256).
SAC_HC = Pair(
    algo="sac",
    env="halfcheetah",
    backend="generalized",
    threshold=1500.0,
    eval_every=4096,
    num_evals=14,  # 57,344 env steps, the first 8,192 warm-up
    settings=dict(
        num_envs=32,
        grad_updates_per_step=16,  # UTD 0.5
        batch_size=256,
        learning_rate=6e-4,
        discounting=0.997,
        tau=0.005,
        reward_scaling=30.0,
        normalize_observations=True,
        min_replay_size=8192,
        max_replay_size=57_344,
        episode_length=1000,
        num_eval_envs=16,
        hidden=(256, 256),
    ),
    source="Brax's published SAC preset scaled to CPU (cpu_feasibility.md sec. 3)",
)

PAIRS = {"ppo-ip": PPO_IP, "sac-ip": SAC_IP, "sac-hc": SAC_HC}
DEFAULT_PAIRS = ("ppo-ip", "sac-ip")

# --quick: the same code paths at tiny sizes (checks the script end to end in a few minutes).
SAC_QUICK = {
    "num_envs": 4,
    "batch_size": 32,
    "min_replay_size": 64,
    "max_replay_size": 192,
    "episode_length": 100,
    "num_eval_envs": 2,
    "hidden": (16, 16),
}
QUICK = {
    "ppo-ip": dataclasses.replace(
        PPO_IP,
        eval_every=320,
        num_evals=2,
        settings={
            **PPO_IP.settings,
            "num_envs": 16,
            "batch_size": 16,
            "num_minibatches": 4,
            "episode_length": 100,
            "num_eval_envs": 2,
            "hidden": (16, 16),
        },
    ),
    "sac-ip": dataclasses.replace(
        SAC_IP,
        eval_every=64,
        num_evals=3,
        settings={**SAC_IP.settings, **SAC_QUICK, "grad_updates_per_step": 4},
    ),
    "sac-hc": dataclasses.replace(
        SAC_HC,
        eval_every=64,
        num_evals=3,
        settings={**SAC_HC.settings, **SAC_QUICK, "grad_updates_per_step": 2},
    ),
}


def load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


# ------------------------------------------------------------------------------------------------
# Brax's trainers


def run_brax(pair: Pair, seed: int) -> dict:
    """One Brax training run; the eval curve with wall time since ``train`` was called."""
    from brax import envs as brax_envs

    _brax_shim.install()
    s = dict(pair.settings)
    hidden = tuple(s.pop("hidden"))
    env = brax_envs.get_environment(pair.env, backend=pair.backend)
    curve: list[tuple[float, int, float, float]] = []
    sps: list[float] = []
    t0 = time.perf_counter()

    def progress(step: int, metrics: dict) -> None:
        curve.append(
            (
                time.perf_counter() - t0,
                int(step),
                float(metrics["eval/episode_reward"]),
                float(metrics.get("eval/episode_reward_std", math.nan)),
            )
        )
        if "training/sps" in metrics:
            sps.append(float(metrics["training/sps"]))

    if pair.algo == "ppo":
        from brax.training.agents.ppo import networks as ppo_networks
        from brax.training.agents.ppo import train as ppo_train

        factory = functools.partial(
            ppo_networks.make_ppo_networks,
            policy_hidden_layer_sizes=hidden,
            value_hidden_layer_sizes=hidden,
        )
        if pair.brax_default_nets:  # policy (32,) * 4, value (256,) * 5, swish
            factory = ppo_networks.make_ppo_networks
        ppo_train.train(
            env,
            num_timesteps=pair.total_steps,
            num_evals=pair.num_evals + 1,  # + the eval at step 0
            deterministic_eval=True,
            network_factory=factory,
            seed=seed,
            progress_fn=progress,
            **s,
        )
    else:
        from brax.training.agents.sac import networks as sac_networks
        from brax.training.agents.sac import train as sac_train

        prefill = s["min_replay_size"]
        if prefill % pair.eval_every:
            raise ValueError("min_replay_size must be a multiple of eval_every")
        factory = functools.partial(sac_networks.make_sac_networks, hidden_layer_sizes=hidden)
        if pair.brax_default_nets:  # (256, 256), relu
            factory = sac_networks.make_sac_networks
        sac_train.train(
            env,
            num_timesteps=pair.total_steps,
            num_evals=pair.num_evals - prefill // pair.eval_every + 1,
            deterministic_eval=True,
            network_factory=factory,
            seed=seed,
            progress_fn=progress,
            **s,
        )
    walls = [c[0] for c in curve]
    return {
        "wall": walls,
        "steps": [c[1] for c in curve],
        "return": [c[2] for c in curve],
        "return_std": [c[3] for c in curve],
        "total_wall_s": time.perf_counter() - t0,
        # Measured as for purerl (evaluations included, first training epoch excluded) ...
        "steps_per_s": steady_steps_per_s(walls, [c[1] for c in curve], 1, warmup_steps(pair)),
        # ... and Brax's own `training/sps` (training epochs only), median over epochs 2..
        "brax_training_sps": float(np.median(sps[1:] if len(sps) > 1 else sps))
        if sps
        else math.nan,
    }


# ------------------------------------------------------------------------------------------------
# purerl


@dataclasses.dataclass(frozen=True)
class Setup:
    algo: Any
    agent_config: Any
    env: Any  # training env (rewards scaled where the agent's Config has no reward scale)
    eval_env: Any
    loop_module: Any
    loop_config: Any
    notes: tuple[str, ...]  # how settings purerl's configs lack were applied, or that they differ


def scale_rewards(env, scale: float):
    """The env with training rewards multiplied by ``scale`` (Brax's ``reward_scaling``, for a
    purerl agent whose Config has no such setting; evaluation uses the unscaled env)."""

    def step(key, state, action):
        new = env.step(key, state, action)
        return new._replace(reward=new.reward * scale)

    return env._replace(step=step)


def purerl_setup(pair: Pair) -> Setup:
    """purerl's agent, envs and loop config for a pair: Brax's settings mapped onto purerl's
    configs. The agent's Config is read at run time: settings it has gained (``reward_scale``,
    ``normalize_observations`` for SAC) are passed, the others noted."""
    from purerl import envs
    from purerl.agents import ppo, sac
    from purerl.loops import on_policy, online

    s = pair.settings
    notes: list[str] = []
    eval_env = envs.make(pair.env, backend=pair.backend, episode_length=s["episode_length"])
    env = eval_env
    module = ppo if pair.algo == "ppo" else sac
    fields = {f.name for f in dataclasses.fields(module.Config)}
    if pair.algo == "ppo":
        kwargs = dict(
            learning_rate=s["learning_rate"],
            adam_eps=1e-8,  # optax.adam's default, which Brax's PPO uses
            hidden=tuple(s["hidden"]),
            discount=s["discounting"],
            gae_lambda=s["gae_lambda"],
            clip_epsilon=s["clipping_epsilon"],
            num_epochs=s["num_updates_per_batch"],
            num_minibatches=s["num_minibatches"],
            # Brax's value loss: 0.5 * vf_loss_coefficient (default 0.5) * mean squared error.
            value_coef=0.25,
            entropy_coef=s["entropy_cost"],
            max_grad_norm=None,  # Brax's default: no gradient clipping
            normalize_advantages=True,
            normalize_observations=s["normalize_observations"],
            obs_clip=1e6,  # Brax does not clip normalized observations
            # Brax's initial policy std: softplus(0) + 0.001 (NormalTanhDistribution, min_std).
            init_log_std=float(np.log(np.log(2.0) + 1e-3)),
        )
    else:
        kwargs = dict(
            actor_lr=s["learning_rate"],
            critic_lr=s["learning_rate"],
            alpha_lr=3e-4,  # fixed in Brax's SAC
            hidden=tuple(s["hidden"]),
            discount=s["discounting"],
            tau=s["tau"],
            init_alpha=1.0,  # Brax: log alpha starts at 0
            target_entropy=-0.5 * env.spec.action_size,  # Brax's SAC: -0.5 * dim(A)
        )
        if "normalize_observations" in fields:
            kwargs["normalize_observations"] = s["normalize_observations"]
        elif s["normalize_observations"]:
            notes.append(
                "observation normalization: Brax normalizes (running mean/std), purerl's SAC "
                "does not (sac.Config has no normalize_observations)"
            )
    if "reward_scale" in fields:
        kwargs["reward_scale"] = s["reward_scaling"]
    elif s["reward_scaling"] != 1.0:
        env = scale_rewards(env, s["reward_scaling"])
        notes.append(
            f"reward scaling {s['reward_scaling']:g}: {pair.algo}.Config has no reward scale; "
            "applied by a benchmark-side wrapper on purerl's training env (evaluation unscaled)"
        )
    agent_config = module.Config(**kwargs)
    algo = module.make(agent_config, env.spec)

    if pair.algo == "ppo":
        per_update = s["batch_size"] * s["num_minibatches"] * s["unroll_length"]
        if per_update % s["num_envs"]:
            raise ValueError("batch_size * num_minibatches * unroll_length must divide by num_envs")
        loop_module = on_policy
        loop_config = on_policy.Config(
            total_steps=pair.total_steps,
            num_envs=s["num_envs"],
            # Brax collects batch * minibatches / envs unrolls of `unroll_length` steps from its
            # envs per update: the same env steps as one purerl rollout of this length.
            unroll_length=per_update // s["num_envs"],
            eval_every=pair.eval_every,
            eval_episodes=s["num_eval_envs"],
        )
    else:
        loop_module = online
        loop_config = online.Config(
            total_steps=pair.total_steps,
            num_envs=s["num_envs"],
            warmup_steps=s["min_replay_size"],
            utd=s["grad_updates_per_step"] / s["num_envs"],
            batch_size=s["batch_size"],
            buffer_size=s["max_replay_size"],
            eval_every=pair.eval_every,
            eval_episodes=s["num_eval_envs"],
        )
    return Setup(algo, agent_config, env, eval_env, loop_module, loop_config, tuple(notes))


def rows_to_curve(rows: list[dict], walls: list[float]) -> dict:
    """Per-period metric rows (leaves ``[seeds]``) -> ``{steps [P], return [S, P], ...}``."""
    ret = np.stack([np.asarray(r["eval/return"], np.float64) for r in rows], axis=-1)
    std = np.stack([np.asarray(r["eval/return_std"], np.float64) for r in rows], axis=-1)
    steps = np.stack([np.asarray(r["env_steps"]) for r in rows], axis=-1)
    return {
        "wall": [float(w) for w in walls],
        "steps": [int(x) for x in steps[0]],
        "return": ret.tolist(),
        "return_std": std.tolist(),
    }


def steady_steps_per_s(
    walls: list[float], steps: list[int], num_seeds: int, from_step: int = 0
) -> float:
    """Env steps/s (summed over seeds): the median over the intervals between two evaluations
    that start at a step > 0 (so never the one holding compilation: purerl's first eval ends its
    first period, Brax's is at step 0) and >= ``from_step`` (SAC: the end of the warm-up)."""
    walls, steps = np.asarray(walls), np.asarray(steps)
    keep = (steps[:-1] > 0) & (steps[:-1] >= from_step)
    if not keep.any():
        return math.nan
    rates = np.diff(steps)[keep] / np.diff(walls)[keep]
    return float(num_seeds * np.median(rates))


def warmup_steps(pair: Pair) -> int:
    return pair.settings.get("min_replay_size", 0)


def run_purerl_vmap(pair: Pair, num_seeds: int) -> dict:
    """All seeds in one program: ``purerl.loops.common.run_periods`` (the ``purerl train`` path)."""
    import jax

    from purerl.loops import common

    t0 = time.perf_counter()
    setup = purerl_setup(pair)
    loop = setup.loop_module.make_loop(
        setup.algo, setup.env, setup.loop_config, eval_env=setup.eval_env
    )
    rows: list[dict] = []
    walls: list[float] = []
    compile_s: list[float] = []

    def on_period(row: dict) -> None:
        walls.append(time.perf_counter() - t0)
        rows.append(row)

    common.run_periods(
        loop,
        jax.random.key(0),
        num_seeds,
        setup.loop_config.num_evals,
        on_period=on_period,
        on_compiled=lambda trace, xla: compile_s.append(trace + xla),
    )
    curve = rows_to_curve(rows, walls)
    curve.update(
        total_wall_s=time.perf_counter() - t0,
        compile_s=compile_s[0],
        steps_per_s=steady_steps_per_s(walls, curve["steps"], num_seeds, warmup_steps(pair)),
    )
    return curve


def run_purerl_single(pair: Pair, seed: int, num_seeds: int) -> dict:
    """One seed, no vmap: ``jit(loop.init)``, then ``jit(loop.run(carry, 1))`` once per period;
    the key is seed ``seed``'s key in :func:`run_purerl_vmap` (``split(key(0), num_seeds)[seed]``)."""
    import jax

    t0 = time.perf_counter()
    setup = purerl_setup(pair)
    loop = setup.loop_module.make_loop(
        setup.algo, setup.env, setup.loop_config, eval_env=setup.eval_env
    )
    key = jax.random.split(jax.random.key(0), num_seeds)[seed]
    carry = jax.jit(loop.init).lower(key).compile()(key)
    period = jax.jit(lambda c: loop.run(c, 1), donate_argnums=0).lower(carry).compile()
    compile_s = time.perf_counter() - t0
    rows, walls = [], []
    for _ in range(setup.loop_config.num_evals):
        carry, row = period(carry)
        rows.append(jax.device_get(row))  # leaves [1]: one period
        walls.append(time.perf_counter() - t0)
    curve = rows_to_curve(rows, walls)  # return [1, P]
    curve.update(
        total_wall_s=time.perf_counter() - t0,
        compile_s=compile_s,
        steps_per_s=steady_steps_per_s(walls, curve["steps"], 1, warmup_steps(pair)),
    )
    return curve


# ------------------------------------------------------------------------------------------------
# Statistics


def arm_arrays(arm: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(steps [P], return [S, P], wall [S, P])`` of an arm (the vmapped arm's shared clock is
    broadcast to every seed)."""
    runs = arm["runs"]
    if arm["kind"] == "vmap":
        run = runs[0]
        ret = np.asarray(run["return"], np.float64)
        wall = np.broadcast_to(np.asarray(run["wall"]), ret.shape)
        return np.asarray(run["steps"]), ret, wall
    steps = np.asarray(runs[0]["steps"])
    for r in runs:
        if list(r["steps"]) != list(steps):
            raise ValueError("seeds of one arm evaluated at different env steps")
    ret = np.stack([np.asarray(r["return"], np.float64).reshape(-1) for r in runs])
    wall = np.stack([np.asarray(r["wall"]) for r in runs])
    return steps, ret, wall


def threshold_hits(steps, ret, wall, threshold: float) -> list[tuple[int, float] | None]:
    """Per seed: ``(env steps, wall s)`` at the first evaluation with return >= threshold."""
    hits = []
    for s in range(ret.shape[0]):
        idx = np.flatnonzero(ret[s] >= threshold)
        hits.append(None if idx.size == 0 else (int(steps[idx[0]]), float(wall[s, idx[0]])))
    return hits


def arm_summary(arm: dict, threshold: float, from_step: int) -> dict:
    from purerl.loops import plots

    steps, ret, wall = arm_arrays(arm)
    hits = threshold_hits(steps, ret, wall, threshold)
    reached = [h for h in hits if h is not None]
    n = ret.shape[0]
    final_mean, final_half, _ = plots.mean_ci(ret[:, -1:])
    if arm["kind"] == "vmap":
        total = arm["runs"][0]["total_wall_s"]  # all seeds at once
        all_reached = max(h[1] for h in reached) if len(reached) == n else math.inf
        run = arm["runs"][0]
        sps = steady_steps_per_s(run["wall"], run["steps"], n, from_step)
        compile_s = arm["runs"][0].get("compile_s", math.nan)
    else:
        total = float(sum(r["total_wall_s"] for r in arm["runs"]))  # one after another
        all_reached = sum(h[1] for h in reached) if len(reached) == n else math.inf
        sps = [steady_steps_per_s(r["wall"], r["steps"], 1, from_step) for r in arm["runs"]]
        sps = [x for x in sps if math.isfinite(x)]
        sps = float(np.median(sps)) if sps else math.nan
        compile_s = [r["compile_s"] for r in arm["runs"] if "compile_s" in r]
        compile_s = float(np.mean(compile_s)) if compile_s else math.nan
    return {
        "seeds": n,
        "final": (float(final_mean[0]), float(final_half[0])),
        "best_mean": float(np.max(np.mean(ret, axis=0))),
        "reached": len(reached),
        "steps_to": float(np.mean([h[0] for h in reached])) if reached else math.inf,
        "wall_to": float(np.mean([h[1] for h in reached])) if reached else math.inf,
        "wall_all_seeds_to": all_reached,
        "total_wall": total,
        "steps_per_s": sps,
        "compile_s": compile_s,
        "first_eval_s": float(np.mean(wall[:, 0])),
        "per_seed_steps_to": [h[0] if h else None for h in hits],
    }


# ------------------------------------------------------------------------------------------------
# Differences that remain between the two sides (read from Brax's and purerl's code)

DIFFERENCES = {
    "ppo": [
        "policy distribution: Brax samples a tanh-squashed Gaussian whose std is "
        "softplus(network output) + 0.001 (state-dependent), with the tanh Jacobian in the "
        "log-probability and a one-sample entropy estimate; purerl's PPO uses a Gaussian with a "
        "learned state-independent log-std, actions clipped to [-1, 1] and the censored-Gaussian "
        "likelihood. The initial std is matched (softplus(0) + 0.001 = 0.694).",
        "activations and init: Brax swish in both networks, lecun-uniform weights, zero biases; "
        "purerl tanh, haiku's truncated-normal fan-in init (same variance), policy output layer "
        "scaled by 0.01.",
        "advantages: Brax cuts the data into {unroll}-step segments (unroll_length), bootstraps "
        "each from V at the segment end and recomputes GAE in every minibatch with the current "
        "value network; purerl computes GAE once per rollout of {rollout} steps per env with the "
        "pre-update value network.",
        "minibatches: Brax shuffles whole {unroll}-step segments ({batch} per minibatch), purerl "
        "single transitions ({samples:,} per minibatch, the same number of samples).",
        "time limits: Brax (bootstrap_on_timeout=False) zeroes the TD error and advantage of "
        "truncated steps; purerl bootstraps V(final observation) on truncation.",
        "observation normalizer: both update running mean/var with the rollout before the epochs; "
        "Brax divides by std (eps 0), purerl by sqrt(var + 1e-8) and clips at 1e6 (in effect "
        "none).",
    ],
    "sac": [
        "warm-up: Brax fills min_replay_size transitions with its initial (stochastic) policy; "
        "purerl takes uniform random actions in [-1, 1] for warmup_steps.",
        "update order within one gradient step: Brax updates alpha first (on the current policy), "
        "then the critic (with the pre-update alpha), then the actor (on the pre-update critic and "
        "alpha); purerl follows the SAC paper's Algorithm 1: critic, actor on the new critic, "
        "alpha on the new actor.",
        "time limits: Brax drops truncated transitions from the critic loss (truncation mask); "
        "purerl bootstraps them from the final observation.",
        "critic loss scale: Brax 0.5 * mean over batch and both critics; purerl the sum over the "
        "two critics of 0.5 * batch mean (2x; Adam is nearly invariant to it).",
        "policy std: Brax softplus(output) + 0.001; purerl exp(clip(output, -20, 2)). Init: Brax "
        "lecun-uniform, zero biases; purerl haiku truncated-normal fan-in.",
        "replay: Brax samples batch * grad_updates_per_step transitions at once per actor step "
        "from a FIFO of max_replay_size; purerl samples each update's batch separately (uniform "
        "time and env index) from a ring buffer of the same size.",
    ],
    "common": [
        "env resets: Brax's AutoResetWrapper resets each training env to the initial state it "
        "drew at the start of the run (the same state every episode); purerl's auto_reset draws "
        "a fresh initial state for every episode. Evaluation episodes start from fresh resets on "
        "both sides.",
        "evaluation: both deterministic (the policy's mode; tanh of the mean for SAC), the same "
        "number of episodes, at the same env steps; Brax also evaluates at step 0 and, for SAC, "
        "starts its eval epochs after the warm-up.",
        "random numbers: Brax seeds 0..S-1; purerl split(key(0), S) (the vmapped and one-at-a-time "
        "arms use the same keys).",
    ],
}


# ------------------------------------------------------------------------------------------------
# Running and recording


def out_paths(quick: bool) -> tuple[str, str]:
    name = "peers_quick" if quick else "peers"
    return os.path.join(RESULTS, name), os.path.join(RESULTS, f"{name}.md")


def settings_record(pair: Pair) -> dict:
    setup = purerl_setup(pair)

    def plain(x):
        return json.loads(
            json.dumps(x, default=lambda v: list(v) if isinstance(v, tuple) else str(v))
        )

    return {
        "env": pair.env,
        "backend": pair.backend,
        "algo": pair.algo,
        "threshold": pair.threshold,
        "eval_every": pair.eval_every,
        "num_evals": pair.num_evals,
        "source": pair.source,
        "brax_default_nets": pair.brax_default_nets,
        "brax": plain(pair.settings),
        "purerl_agent": plain(dataclasses.asdict(setup.agent_config)),
        "purerl_loop": plain(dataclasses.asdict(setup.loop_config)),
        "notes": list(setup.notes),
    }


def run_pair(name: str, pair: Pair, seeds: int, arms: tuple[str, ...], quick: bool) -> str:
    """Run the arms of one pair and merge them into ``<out>/<name>.json``; returns its path."""
    import brax
    import jax

    out_dir, _ = out_paths(quick)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.json")
    record = settings_record(pair)
    data = {"pair": name, "settings": record, "arms": {}}
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        if old.get("settings") == record:  # same settings: keep the arms not rerun now
            data["arms"] = old.get("arms", {})
    for arm in arms:
        print(f"== {name}: {arm}, {seeds} seed(s), load {load_average()}", flush=True)
        entry = {
            "kind": "vmap" if arm == "purerl-vmap" else "sequential",
            "seeds": seeds,
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "load_before": load_average(),
            "versions": {"jax": jax.__version__, "brax": brax.__version__},
            "provenance": provenance(),
        }
        if arm == "brax":
            entry["runs"] = [run_brax(pair, s) for s in range(seeds)]
        elif arm == "purerl-vmap":
            entry["runs"] = [run_purerl_vmap(pair, seeds)]
        else:
            entry["runs"] = [run_purerl_single(pair, s, seeds) for s in range(seeds)]
        entry["load_after"] = load_average()
        for r in entry["runs"]:
            print(
                f"   wall {r['total_wall_s']:.1f} s, final return "
                f"{np.round(np.asarray(r['return'])[..., -1], 1).tolist()}",
                flush=True,
            )
        data["arms"][arm] = entry
        with open(path, "w") as f:
            json.dump(data, f, indent=1)
    return path


# ------------------------------------------------------------------------------------------------
# Report


def fmt(x: float, digits: int = 0, unit: str = "") -> str:
    if x is None or not math.isfinite(x):
        return "not reached" if x == math.inf else "n/a"
    return f"{x:,.{digits}f}{unit}"


def ratio(a: float, b: float) -> str:
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return "n/a"
    return f"{a / b:.2f}"


def plot_pair(name: str, data: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from purerl import envs
    from purerl.loops import plots

    settings = data["settings"]
    # The band stays inside the returns the env can give (inverted_pendulum: [0, episode length]).
    bounds = envs.return_bounds(settings["env"], settings["brax"]["episode_length"])
    fig, (ax_s, ax_w) = plt.subplots(1, 2, figsize=(11, 4))
    for arm, entry in data["arms"].items():
        steps, ret, wall = arm_arrays(entry)
        mean, low, high, _ = plots.seed_interval(ret, "t", bounds=bounds)
        label = f"{arm} ({ret.shape[0]} seeds)"
        for ax, x in ((ax_s, steps), (ax_w, np.mean(wall, axis=0))):
            (line,) = ax.plot(x, mean, label=label)
            if ret.shape[0] > 1:
                ax.fill_between(x, low, high, alpha=0.2, color=line.get_color())
    threshold = data["settings"]["threshold"]
    for ax, xlabel in ((ax_s, "env steps (per seed)"), (ax_w, "wall s incl. compile")):
        ax.axhline(threshold, color="grey", lw=0.8, ls="--")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(
            f"eval return (undiscounted, per episode)\nmean, 95% t-CI in {plots.format_bounds(bounds)}",
            fontsize=8,
        )
    ax_w.set_title("vs wall time (vmapped arm: all seeds at once)", fontsize=9)
    ax_s.set_title(f"{name}: {data['settings']['env']} ({data['settings']['backend']})")
    ax_s.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def settings_table(rec: dict) -> str:
    lines = ["| Brax setting | value | purerl setting(s) |", "|---|---|---|"]
    agent, loop = rec["purerl_agent"], rec["purerl_loop"]
    if rec["algo"] == "ppo":
        mapping = {
            "num_envs": f"loop num_envs {loop['num_envs']}",
            "batch_size": "(x num_minibatches x unroll_length / num_envs) -> loop unroll_length "
            f"{loop['unroll_length']}",
            "unroll_length": "GAE segment (purerl: the whole rollout; see differences)",
            "num_minibatches": f"num_minibatches {agent['num_minibatches']}",
            "num_updates_per_batch": f"num_epochs {agent['num_epochs']}",
            "learning_rate": f"learning_rate {agent['learning_rate']}, adam_eps {agent['adam_eps']}",
            "entropy_cost": f"entropy_coef {agent['entropy_coef']}",
            "discounting": f"discount {agent['discount']}",
            "gae_lambda": f"gae_lambda {agent['gae_lambda']}",
            "clipping_epsilon": f"clip_epsilon {agent['clip_epsilon']}",
            "reward_scaling": f"reward_scale {agent['reward_scale']}"
            if "reward_scale" in agent
            else "benchmark-side reward wrapper",
            "normalize_observations": f"normalize_observations {agent['normalize_observations']}"
            f", obs_clip {agent['obs_clip']:g}",
            "episode_length": "envs.make(episode_length=...)",
            "num_eval_envs": f"loop eval_episodes {loop['eval_episodes']}",
            "hidden": f"hidden {tuple(agent['hidden'])} (Brax: policy and value layer sizes)",
        }
        extra = [
            "| vf_loss_coefficient (default) | 0.5, loss 0.5 * c * MSE | "
            f"value_coef {agent['value_coef']} |",
            f"| max_grad_norm (default) | None | max_grad_norm {agent['max_grad_norm']} |",
            f"| policy init std | softplus(0) + 0.001 | init_log_std {agent['init_log_std']:.3f} |",
        ]
    else:
        mapping = {
            "num_envs": f"loop num_envs {loop['num_envs']}",
            "grad_updates_per_step": f"loop utd {loop['utd']:g} (updates per env step)",
            "batch_size": f"loop batch_size {loop['batch_size']}",
            "learning_rate": f"actor_lr {agent['actor_lr']}, critic_lr {agent['critic_lr']}",
            "discounting": f"discount {agent['discount']}",
            "tau": f"tau {agent['tau']}",
            "reward_scaling": f"reward_scale {agent['reward_scale']}"
            if "reward_scale" in agent
            else (
                "benchmark-side reward wrapper"
                if rec["brax"]["reward_scaling"] != 1.0
                else "(1: nothing to apply)"
            ),
            "normalize_observations": f"normalize_observations {agent['normalize_observations']}"
            if "normalize_observations" in agent
            else "**not available in purerl's SAC**",
            "min_replay_size": f"loop warmup_steps {loop['warmup_steps']}",
            "max_replay_size": f"loop buffer_size {loop['buffer_size']}",
            "episode_length": "envs.make(episode_length=...)",
            "num_eval_envs": f"loop eval_episodes {loop['eval_episodes']}",
            "hidden": f"hidden {tuple(agent['hidden'])} (actor and critics)",
        }
        extra = [
            f"| alpha learning rate (fixed) | 3e-4 | alpha_lr {agent['alpha_lr']} |",
            f"| initial alpha (log alpha 0) | 1 | init_alpha {agent['init_alpha']} |",
            f"| target entropy | -0.5 * dim(A) | target_entropy {agent['target_entropy']} |",
        ]
    for k, v in rec["brax"].items():
        value = tuple(v) if isinstance(v, list) else v
        lines.append(f"| {k} | {value} | {mapping.get(k, '')} |")
    return "\n".join(lines + extra)


def pair_section(name: str, data: dict, out_dir: str) -> str:
    from purerl import envs
    from purerl.loops import plots

    rec = data["settings"]
    thr = rec["threshold"]
    bounds = envs.return_bounds(rec["env"], rec["brax"]["episode_length"])
    arms = {a: data["arms"][a] for a in ARMS if a in data["arms"]}
    from_step = rec["brax"].get("min_replay_size", 0)
    summ = {a: arm_summary(e, thr, from_step) for a, e in arms.items()}
    png = os.path.join(out_dir, f"{name}.png")
    plot_pair(name, {**data, "arms": arms}, png)
    rel_png = os.path.relpath(png, RESULTS)
    out = [
        f"## {name}: {rec['algo'].upper()} on {rec['env']} ({rec['backend']} backend)\n",
        f"Settings: {rec['source']}. Threshold {thr:g}; evaluation every {rec['eval_every']:,} "
        f"env steps to {rec['eval_every'] * rec['num_evals']:,}, "
        f"{rec['brax']['num_eval_envs']} episodes, deterministic policy.\n",
    ]
    if rec.get("brax_default_nets"):
        out.append(
            "**Networks not matched here**: Brax keeps its default sizes (PPO: policy (32,) * 4, "
            "value (256,) * 5, swish; SAC: (256, 256), relu); purerl uses "
            f"{tuple(rec['purerl_agent']['hidden'])}.\n"
        )
    for a, e in arms.items():
        out.append(
            f"- {a}: {e['seeds']} seed(s), run {e['date']}, load average before/after "
            f"{e['load_before']} / {e['load_after']}, jax {e['versions']['jax']}, "
            f"brax {e['versions']['brax']}"
        )
    out.append("")
    brax_sps = "n/a"
    if "brax" in arms:
        values = [r.get("brax_training_sps", math.nan) for r in arms["brax"]["runs"]]
        brax_sps = ", ".join(fmt(x) for x in values)
    out.append(
        "| arm | seeds | final return (mean ± 95% CI) | best mean | seeds >= threshold | "
        "env steps to threshold (mean) | wall s to threshold per seed (mean) | wall s until "
        "every seed reached it | total wall s, all seeds | env steps/s after compile | compile / "
        "first eval s |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for a, s in summ.items():
        compile_text = (
            f"{fmt(s['compile_s'], 1)} / {fmt(s['first_eval_s'], 1)}"
            if a != "brax"
            else f"n/a / {fmt(s['first_eval_s'], 1)}"
        )
        out.append(
            f"| {a} | {s['seeds']} | {plots.format_ci(*s['final'], 1, bounds)} | "
            f"{s['best_mean']:.1f} | {s['reached']}/{s['seeds']} | {fmt(s['steps_to'])} | "
            f"{fmt(s['wall_to'], 1)} | {fmt(s['wall_all_seeds_to'], 1)} | "
            f"{fmt(s['total_wall'], 1)} | {fmt(s['steps_per_s'])} | {compile_text} |"
        )
    out.append(
        "\n(Brax's first eval is at step 0, after building its programs; purerl's first is at "
        "the first eval step. Sequential arms: walls are per run, 'until every seed' and 'total' "
        "add the runs; the vmapped arm's clock is shared by its seeds. Env steps/s after compile: "
        "eval_every / median time between evaluations (evaluations included, the first period "
        "excluded, and for SAC the warm-up), median over runs; the vmapped arm's is summed over "
        "seeds. Brax's own "
        f"`training/sps` (training epochs only): {brax_sps}.)\n"
    )
    if "brax" in summ:
        b = summ["brax"]
        out.append("| ratio purerl / brax | purerl-vmap | purerl-1 |")
        out.append("|---|---|---|")
        v = summ.get("purerl-vmap")
        o = summ.get("purerl-1")

        rows = [
            (
                "env steps to threshold (mean over seeds that reached it)",
                lambda s: ratio(s["steps_to"], b["steps_to"]),
            ),
            ("wall s to threshold per seed (mean)", lambda s: ratio(s["wall_to"], b["wall_to"])),
            (
                "wall s until every seed reached threshold",
                lambda s: ratio(s["wall_all_seeds_to"], b["wall_all_seeds_to"]),
            ),
            ("total wall s for all seeds", lambda s: ratio(s["total_wall"], b["total_wall"])),
            (
                "env steps/s after compile (per run; vmap: all seeds)",
                lambda s: ratio(s["steps_per_s"], b["steps_per_s"]),
            ),
            ("final eval return", lambda s: ratio(s["final"][0], b["final"][0])),
        ]
        for label, f in rows:
            out.append(f"| {label} | {f(v) if v else 'n/a'} | {f(o) if o else 'n/a'} |")
        out.append("")
    # Curve table: mean return at each eval step, and mean wall at that step.
    out.append("Eval return (mean over seeds) and wall s (mean over seeds) at each evaluation:\n")
    head = "| env steps | " + " | ".join(f"{a} return | {a} wall s" for a in arms) + " |"
    out.append(head)
    out.append("|---" * (1 + 2 * len(arms)) + "|")
    curves = {}
    for a, e in arms.items():
        steps, ret, wall = arm_arrays(e)
        curves[a] = {
            int(st): (float(np.mean(ret[:, i])), float(np.mean(wall[:, i])))
            for i, st in enumerate(steps)
        }
    all_steps = sorted(set().union(*[set(c) for c in curves.values()]))
    for st in all_steps:
        cells = []
        for a in arms:
            if st in curves[a]:
                r, w = curves[a][st]
                cells.append(f"{r:.1f} | {w:.1f}")
            else:
                cells.append(" | ")
        out.append(f"| {st:,} | " + " | ".join(cells) + " |")
    out.append(f"\n![{name}]({rel_png})\n")
    for a, s in summ.items():
        out.append(f"- {a} env steps to threshold per seed: {s['per_seed_steps_to']}")
    out.append("\n### Settings\n")
    out.append(settings_table(rec))
    out.append("\n### What still differs\n")
    b = rec["brax"]
    facts = {"unroll": b.get("unroll_length"), "batch": b.get("batch_size")}
    if rec["algo"] == "ppo":
        facts["rollout"] = rec["purerl_loop"]["unroll_length"]
        facts["samples"] = b["batch_size"] * b["unroll_length"]
    diffs = [d.format(**facts) for d in DIFFERENCES[rec["algo"]] + DIFFERENCES["common"]]
    diffs = list(rec["notes"]) + diffs
    out += [f"{i}. {d}" for i, d in enumerate(diffs, 1)]
    out.append(
        "\npurerl's full configs as run: `"
        + json.dumps(rec["purerl_agent"])
        + "`; loop `"
        + json.dumps(rec["purerl_loop"])
        + "`.\n"
    )
    return "\n".join(out)


def summary(quick: bool, command: str) -> str:
    out_dir, md = out_paths(quick)
    sections = []
    for name in [n + suffix for n in PAIRS for suffix in ("", NETS_SUFFIX)]:
        path = os.path.join(out_dir, f"{name}.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            data = json.load(f)
        sections.append(pair_section(name, data, out_dir))
    title = "# purerl vs Brax's own trainers" + (
        " (a check run, --quick or --evals: not results)" if quick else ""
    )
    text = (
        f"{title}\n\n{provenance()}\n"
        "Each pair runs Brax's trainer (`brax.training.agents.ppo` / `.sac`, brax 0.14.2, with the "
        "jax 0.10 shim of `benchmarks/_brax_shim.py`) one seed after another, purerl with all "
        "seeds vmapped in one program (`purerl-vmap`, the `purerl train` path), and purerl one "
        "seed at a time without vmap (`purerl-1`), on the same env, backend, network sizes and "
        "hyperparameters (Brax's settings mapped onto purerl's configs; every remaining "
        "difference is listed under each pair). Wall times include compilation; every arm's "
        "load average is recorded (2 shared cores: other jobs slow the runs). Brax compiles its "
        "training epoch once and its evaluation program twice per run (the second time because "
        "the evaluation env state comes back weak-typed from the first evaluation; seen with "
        "`jax_log_compiles`, not caused by the shim); purerl compiles one init and one period "
        "program per run.\n\n"
        f"Full run: `{command}`\n\n" + "\n\n".join(sections)
    )
    with open(md, "w") as f:
        f.write(text)
    return md


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default=",".join(DEFAULT_PAIRS), help=f"pairs: {', '.join(PAIRS)}")
    p.add_argument("--seeds", type=int, default=None, help="default 5 (--quick: 2)")
    p.add_argument("--arms", default=",".join(ARMS), help=f"arms: {', '.join(ARMS)}")
    p.add_argument("--quick", action="store_true", help="tiny sizes; writes peers_quick.md")
    p.add_argument(
        "--evals",
        type=int,
        default=None,
        help="check run: the full-size settings cut to their first N evaluations (SAC: N must "
        "pass the warm-up); writes peers_quick.md like --quick",
    )
    p.add_argument(
        "--brax-default-nets",
        action="store_true",
        help="Brax keeps its default network sizes (PPO: policy 4x32, value 5x256) instead of "
        "purerl's; results go to <pair>-brax-default-nets",
    )
    p.add_argument("--summary", action="store_true", help="only rebuild the table")
    args = p.parse_args()
    seeds = args.seeds or (2 if args.quick else 5)
    names = [n for n in args.only.split(",") if n]
    arms = tuple(a for a in args.arms.split(",") if a)
    for n in names:
        if n not in PAIRS:
            raise SystemExit(f"unknown pair {n!r}; known: {', '.join(PAIRS)}")
    for a in arms:
        if a not in ARMS:
            raise SystemExit(f"unknown arm {a!r}; known: {', '.join(ARMS)}")
    import jax

    # Cold compiles on both sides: no persistent compilation cache (purerl's CLI turns it on).
    jax.config.update("jax_enable_compilation_cache", False)
    check = args.quick or args.evals is not None
    if args.quick and args.evals is not None:
        raise SystemExit("--quick and --evals are two different checks; give one")
    if not args.summary:
        table = QUICK if args.quick else PAIRS
        if args.evals is not None:
            table = {n: dataclasses.replace(p, num_evals=args.evals) for n, p in PAIRS.items()}
        for n in names:
            pair, name = table[n], n
            if args.brax_default_nets:
                pair, name = dataclasses.replace(pair, brax_default_nets=True), n + NETS_SUFFIX
            run_pair(name, pair, seeds, arms, check)
    full = "python -m benchmarks.peers --only ppo-ip,sac-ip --seeds 5"
    print("wrote", summary(check, full))


if __name__ == "__main__":
    main()
