"""The toy RLHF world shared by the alignment benchmarks (``alignment_*.py``).

One pre-trained and SFT'd LM (seed 0, the ``purerl align`` defaults: a 2-layer, ``d_model = 32``
decoder, 400 + 400 updates of 64 sequences) is the reference policy of every experiment; seeds vary
what comes after it (preference data, reward-model training, RL sampling). Everything is
deterministic, so each script rebuilds the world in ~15 s instead of reading a cache.

``reward_models(world, noise, seed)`` trains WARM's ``M = 4`` diverse members on 2,000 preference
pairs (``warm.train_reward_models``, the ``purerl align`` defaults); ``proxy(world)`` is the single
reward model (member 0 of the clean seed-0 run) that the WARP and BOND experiments optimise, as the
papers do with one RM.

Records are JSON files under ``results/alignment/``; every record carries the provenance lines
(command, date, JAX version, hardware) of the run that made it.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._common import RESULTS, provenance

OUT = os.path.join(RESULTS, "alignment")

PRETRAIN_STEPS = 400
SFT_STEPS = 400
LM_BATCH = 64
NUM_PAIRS = 2000
EVAL_PAIRS = 1000
NUM_MEMBERS = 4
RM_STEPS = 500


class World(NamedTuple):
    task: Any  # tasks.TaskConfig
    lm_config: Any  # lm.LMConfig
    pretrained: Any  # LM params after pre-training
    sft: Any  # LM params after SFT: the reference policy pi_ref / theta_sft
    eval_prompts: jax.Array  # [512, P] held-out prompts, the same for every evaluation
    seconds: float  # wall time to build (compilation included)


def world(seed: int = 0) -> World:
    from purerl.alignment import lm, pretrain, tasks

    start = time.perf_counter()
    task = tasks.TaskConfig()
    lm_config = lm.LMConfig(
        vocab_size=task.vocab_size, max_len=task.seq_len, d_model=32, num_heads=2, num_layers=2
    )
    k_pre, k_sft, k_eval = jax.random.split(jax.random.key(seed), 3)
    pre = pretrain.pretrain(k_pre, lm_config, task, PRETRAIN_STEPS, LM_BATCH)
    sft = pretrain.sft(k_sft, pre.params, lm_config, task, SFT_STEPS, LM_BATCH)
    prompts = tasks.sample_prompts(jax.random.fold_in(k_eval, 7), task, 512)
    jax.block_until_ready(sft.params)
    return World(task, lm_config, pre.params, sft.params, prompts, time.perf_counter() - start)


def sft_checkpoints(world: World, steps: tuple[int, ...], seed: int = 0):
    """The world's SFT run replayed with checkpoints after ``steps`` updates (stacked ``[K, ...]``;
    WARM's "Baklava" inits). The replay is the same computation as :func:`world`'s (same keys),
    so its final parameters are ``world.sft`` (checked)."""
    from purerl.alignment import pretrain

    _, k_sft, _ = jax.random.split(jax.random.key(seed), 3)
    run = pretrain.sft(
        k_sft, world.pretrained, world.lm_config, world.task, SFT_STEPS, LM_BATCH, checkpoints=steps
    )
    same = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), run.params, world.sft)
    if not all(jax.tree.leaves(same)):
        raise RuntimeError("sft_checkpoints: the replayed SFT run does not end at world.sft")
    return run.checkpoints


def warm_config(world: World):
    from purerl.alignment import reward_model, warm

    return warm.WarmConfig(
        rm=reward_model.RMConfig(lm=world.lm_config), num_members=NUM_MEMBERS, steps=RM_STEPS
    )


def preferences(world: World, noise: float, seed: int):
    """Training pairs (``noise`` of the labels flipped) and the oracle-labelled ID / shifted sets."""
    from purerl.alignment import tasks

    key = jax.random.fold_in(jax.random.key(1000 + seed), int(round(noise * 100)))
    k_prefs, k_eval = jax.random.split(key)
    prefs = tasks.preference_dataset(k_prefs, world.task, NUM_PAIRS, noise=noise)
    eval_sets = tasks.evaluation_sets(k_eval, world.task, EVAL_PAIRS)
    return prefs, eval_sets


def reward_models(world: World, noise: float, seed: int):
    """``(WarmRun, prefs, eval_sets)``: M = 4 diverse reward models trained in one vmap."""
    from purerl.alignment import warm

    prefs, eval_sets = preferences(world, noise, seed)
    key = jax.random.fold_in(jax.random.key(2000 + seed), int(round(noise * 100)))
    run = warm.train_reward_models(key, world.sft, prefs, warm_config(world))
    return run, prefs, eval_sets


def member(stacked: Any, i: int) -> Any:
    return jax.tree.map(lambda x: x[i], stacked)


def proxy(world: World):
    """The single proxy RM of the WARP / BOND experiments: member 0 of the clean seed-0 run."""
    run, _, _ = reward_models(world, 0.0, 0)
    return member(run.params, 0)


def rm_reward_fn(world: World, rm_params: Any):
    """``reward_fn(tokens, mask) -> [N]`` of one reward model (a closure over its params)."""
    from purerl.alignment import reward_model

    return lambda tokens, mask: reward_model.reward(world.lm_config, rm_params, tokens, mask)


def gold_reward_fn(world: World):
    from purerl.alignment import tasks

    return lambda tokens, mask: tasks.sequence_gold_reward(tokens, mask, world.task)


def gold_win_rate(world: World, params_a: Any, params_b: Any, key: jax.Array, temperature=1.0):
    """Oracle win rate of policy A over policy B: one sample of each per held-out prompt, the
    response with the higher gold reward wins, ties count 1/2 (notes §6.1 item 7, hard form).
    Returns ``(win_rate, gold_a, gold_b)``."""
    from purerl.alignment import lm, tasks

    def gold_of(params, k):
        s = lm.sample(
            world.lm_config,
            params,
            world.eval_prompts,
            k,
            world.task.response_len,
            temperature=temperature,
            eos_id=tasks.EOS_ID,
            pad_id=tasks.PAD_ID,
        )
        return np.asarray(tasks.sequence_gold_reward(s.tokens, s.mask, world.task))

    ka, kb = jax.random.split(key)
    ga, gb = gold_of(params_a, ka), gold_of(params_b, kb)
    win = float(np.mean((ga > gb) + 0.5 * (ga == gb)))
    return win, float(ga.mean()), float(gb.mean())


def to_json(x: Any) -> Any:
    """Arrays and numpy scalars -> lists / floats, recursively."""
    if isinstance(x, dict):
        return {str(k): to_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_json(v) for v in x]
    if isinstance(x, (jax.Array, np.ndarray)):
        return np.asarray(x).tolist()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return x


def write_record(name: str, record: dict) -> str:
    os.makedirs(OUT, exist_ok=True)
    record = {"provenance": provenance(), **to_json(record)}
    path = os.path.join(OUT, f"{name}.json")
    with open(path, "w") as f:
        json.dump(record, f, indent=1)
    print(f"wrote {path}")
    return path


def read_record(name: str) -> dict | None:
    path = os.path.join(OUT, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def mean_ci(values: Any, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95% t half-width over ``axis`` (the seeds)."""
    from purerl.loops import plots

    mean, half, _ = plots.mean_ci(np.asarray(values, np.float64), axis=axis)
    return mean, half


def fmt(values: Any, precision: int = 3) -> str:
    """``mean ± half`` over the seeds (first axis) of a list of numbers."""
    m, h = mean_ci(np.asarray(values, np.float64))
    return f"{float(m):.{precision}f} ± {float(h):.{precision}f}"


def stack_trees(trees: list) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)
