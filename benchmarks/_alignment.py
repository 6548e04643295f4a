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

OUT = os.path.join(RESULTS, "alignment")  # the JSON records and the PNGs
SECTIONS = RESULTS  # the markdown sections (alignment_<part>.md)

PRETRAIN_STEPS = 400
SFT_STEPS = 400
LM_BATCH = 64
NUM_PAIRS = 2000
EVAL_PAIRS = 1000
NUM_MEMBERS = 4
RM_STEPS = 500


def use_quick_world(out: str) -> None:
    """Smoke mode (``--quick`` of the scripts): a world of 20 + 20 LM updates of 16 sequences and
    reward models of 10 updates on 128 pairs (64 per evaluation set), and every record, section
    and plot written under ``out`` instead of ``results/``. The numbers mean nothing; the code
    paths are those of a full run."""
    global OUT, SECTIONS, PRETRAIN_STEPS, SFT_STEPS, LM_BATCH, NUM_PAIRS, EVAL_PAIRS, RM_STEPS
    OUT, SECTIONS = os.path.join(out, "alignment"), out
    PRETRAIN_STEPS, SFT_STEPS, LM_BATCH = 20, 20, 16
    NUM_PAIRS, EVAL_PAIRS, RM_STEPS = 128, 64, 10


class World(NamedTuple):
    task: Any  # tasks.TaskConfig
    lm_config: Any  # lm.LMConfig
    pretrained: Any  # LM params after pre-training
    sft: Any  # LM params after SFT: the reference policy pi_ref / theta_sft
    eval_prompts: jax.Array  # [512, P] held-out prompts, the same for every evaluation
    seconds: float  # wall time to build (compilation included)


def pipeline_config(noise: float = 0.25):
    """The world's ``alignment.pipeline.PipelineConfig``: the ``purerl align`` defaults (at the
    sizes above), ``noise`` of the training labels flipped."""
    from purerl.alignment import pipeline, reward_model, tasks, warm

    task = tasks.TaskConfig()
    lm_config = pipeline.default_lm_config(task)
    rm = reward_model.RMConfig(lm=lm_config)
    return pipeline.PipelineConfig(
        task=task, lm=lm_config, pretrain_steps=PRETRAIN_STEPS, sft_steps=SFT_STEPS,
        batch_size=LM_BATCH, pairs=NUM_PAIRS, noise=noise, eval_pairs=EVAL_PAIRS,
        warm=warm.WarmConfig(rm=rm, num_members=NUM_MEMBERS, steps=RM_STEPS),
    )  # fmt: skip


def world(seed: int = 0) -> World:
    """The pipeline's pre-training and SFT stages (``pipeline.pretrain_lm`` / ``sft_lm``) on keys
    split from ``seed``, and 512 held-out evaluation prompts."""
    from purerl.alignment import pipeline, tasks

    start = time.perf_counter()
    config = pipeline_config()
    k_pre, k_sft, k_eval = jax.random.split(jax.random.key(seed), 3)
    pre = pipeline.pretrain_lm(config, k_pre)
    sft = pipeline.sft_lm(config, k_sft, pre.params)
    prompts = tasks.sample_prompts(jax.random.fold_in(k_eval, 7), config.task, 512)
    jax.block_until_ready(sft.params)
    return World(
        config.task, config.lm_config, pre.params, sft.params, prompts, time.perf_counter() - start
    )


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
    return pipeline_config().warm_config


def preferences(world: World, noise: float, seed: int):
    """Training pairs (``noise`` of the labels flipped) and the oracle-labelled ID / shifted sets
    (``pipeline.preference_data``)."""
    from purerl.alignment import pipeline

    key = jax.random.fold_in(jax.random.key(1000 + seed), int(round(noise * 100)))
    k_prefs, k_eval = jax.random.split(key)
    return pipeline.preference_data(pipeline_config(noise), k_prefs, k_eval)


def reward_models(world: World, noise: float, seed: int):
    """``(WarmRun, prefs, eval_sets)``: M = 4 diverse reward models trained in one vmap
    (``pipeline.fit_reward_models``)."""
    from purerl.alignment import pipeline

    prefs, eval_sets = preferences(world, noise, seed)
    key = jax.random.fold_in(jax.random.key(2000 + seed), int(round(noise * 100)))
    run = pipeline.fit_reward_models(pipeline_config(noise), key, world.sft, prefs)
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
    """Oracle win rate of policy A over policy B on the world's held-out prompts
    (``pipeline.gold_win_rate``). Returns ``(win_rate, mean gold_a, mean gold_b)``."""
    from purerl.alignment import pipeline

    win, gold_a, gold_b = pipeline.gold_win_rate(
        world.lm_config, world.task, world.eval_prompts, params_a, params_b, key, temperature
    )
    return win, float(gold_a.mean()), float(gold_b.mean())


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


def provenance_lines(records: dict[str, dict | None]) -> list[str]:
    """Markdown lines quoting the provenance of each record that exists, under its label."""
    lines = []
    for label, rec in records.items():
        if rec:
            lines += [f"`{label}`:", "", rec["provenance"].rstrip(), ""]
    return lines


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


def ci(values: Any) -> tuple[float, float]:
    """``(mean, 95% t half-width)`` over the seeds of a list of numbers (half NaN for one seed)."""
    m, h = mean_ci(np.asarray(values, np.float64))
    return float(m), float(h)


def pm(m: float, h: float, precision: int = 3) -> str:
    """``m ± h``, or ``m`` alone when there is no CI (one seed)."""
    return f"{m:.{precision}f} ± {h:.{precision}f}" if np.isfinite(h) else f"{m:.{precision}f}"


def fmt(values: Any, precision: int = 3) -> str:
    """``mean ± half`` over the seeds (first axis) of a list of numbers (``mean`` for one seed)."""
    return pm(*ci(values), precision)


def pct(values: Any) -> str:
    """:func:`fmt` of fractions, in percent with one decimal."""
    return fmt(np.asarray(values, np.float64) * 100, 1)


def verdict(flags: list[bool]) -> str:
    """PASS when every criterion holds, FAIL when none does, else partial."""
    return "PASS" if all(flags) else ("FAIL" if not any(flags) else "partial")


def hypervolume(kl: Any, reward: Any, ref_kl: float, ref_reward: float) -> float:
    """Area of the (KL, reward) region dominated by the points (lower KL and higher reward are
    better) inside ``0 <= KL <= ref_kl``, ``reward >= ref_reward``: the union of the boxes
    ``[KL_i, ref_kl] x [ref_reward, R_i]`` = ``integral_0^ref_kl max(0, max{R_i : KL_i <= k} -
    ref_reward) dk``. Points beyond ``ref_kl`` count for nothing. Units: nats x reward."""
    kl = np.asarray(kl, np.float64).ravel()
    r = np.asarray(reward, np.float64).ravel()
    ok = np.isfinite(kl) & np.isfinite(r) & (kl <= ref_kl) & (r > ref_reward)
    if not ok.any():
        return 0.0
    order = np.argsort(np.maximum(kl[ok], 0.0))
    k, best = np.maximum(kl[ok], 0.0)[order], np.maximum.accumulate(r[ok][order])
    widths = np.diff(np.append(k, ref_kl))
    return float(np.sum(widths * (best - ref_reward)))


def host(tree: dict) -> dict:
    """``{key: np.ndarray}`` of a dict of device arrays."""
    return {k: np.asarray(v) for k, v in tree.items()}


def log(start: float, msg: str) -> None:
    """A progress line with the seconds since ``start``."""
    print(f"[{time.perf_counter() - start:7.1f} s] {msg}", flush=True)


def compile_and_run(desc: str, fn: Any, *args: Any) -> tuple[Any, float, float]:
    """``jax.jit(fn)(*args)`` with compilation and the run timed apart (``fn`` is typically a
    ``jax.vmap`` over runs); prints one line for each. Returns ``(output, compile_s, run_s)``."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    print(f"  [{desc}] compiled in {compile_s:.0f} s", flush=True)
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    run_s = time.perf_counter() - start
    print(f"  [{desc}] ran in {run_s:.0f} s", flush=True)
    return out, compile_s, run_s


def loop_config(steps: int, eval_every: int):
    """The ``loops.self_sampling.LoopConfig`` of ``steps`` updates, evaluated every ``eval_every``."""
    from purerl.loops import self_sampling as loop

    return loop.LoopConfig(num_updates=steps, eval_every=eval_every)


def rl_runs(
    desc: str,
    make: Any,
    keys: jax.Array,
    hparams: tuple,
    init_args: tuple,
    config: Any,
    callback: Any = None,
    snapshot: Any = None,
    select: Any = None,
) -> tuple[Any, float, float]:
    """Many RL runs in one ``jit(vmap(train))``, compile and run timed apart.

    Run ``i`` is ``loop.make_train(algo, config, evaluate_fn, callback, snapshot)(keys[i],
    *init_args)`` with ``(algo, evaluate_fn) = make(*(h[i] for h in hparams))``: the
    hyperparameters in ``hparams`` (arrays ``[runs]``) are traced, so every run shares one compile.
    ``select(outputs)`` (default: all of ``train``'s outputs) picks what leaves the device.
    Returns ``(selected outputs stacked over runs, compile_s, run_s)``.
    """
    from purerl.loops import self_sampling as loop

    def one(key, *hp):
        algo, evaluate_fn = make(*hp)
        train = loop.make_train(algo, config, evaluate_fn, callback=callback, snapshot=snapshot)
        out = train(key, *init_args)
        return out if select is None else select(out)

    return compile_and_run(desc, jax.vmap(one), keys, *hparams)


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, name: str, dpi: int) -> str:
    """Lay out, save as ``OUT/name`` and close a figure; returns the path."""
    import matplotlib.pyplot as plt

    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def write_section(filename: str, text: str) -> str:
    """Write a markdown section (``alignment_<part>.md``) next to the other results."""
    os.makedirs(SECTIONS, exist_ok=True)
    path = os.path.join(SECTIONS, filename)
    with open(path, "w") as f:
        f.write(text)
    return path


def quick_parser(parser: Any) -> Any:
    """Add ``--quick OUT`` (:func:`use_quick_world`) to a script's argument parser."""
    parser.add_argument(
        "--quick",
        metavar="OUT",
        default=None,
        help="smoke mode: a tiny world and tiny sizes, records and sections under OUT",
    )
    return parser


def stack_trees(trees: list) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)
