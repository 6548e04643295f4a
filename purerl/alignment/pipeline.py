"""The toy RLHF pipeline: pre-training -> SFT -> preference data -> reward models -> RL.

One place for the sequence that ``purerl align`` runs and that the alignment benchmarks
(``benchmarks/_alignment.py``) build their world from::

    config = pipeline.PipelineConfig(seed=0, noise=0.25)       # the ``purerl align`` defaults
    results = pipeline.run(config)                               # every stage, in order
    print(pipeline.report(results))                              # the markdown tables
    json.dump(pipeline.summary(results), f)                      # JSON-able numbers

Every stage is a function of the config and its PRNG key (:func:`stage_keys` derives the keys of a
whole run from ``config.seed``), so a caller can run one stage alone or feed its own inputs:

1. :func:`pretrain_lm` -- next-token pre-training of the LM on the task's corpus
   (``alignment.pretrain.pretrain``; the RLHF recipe of Ouyang et al. 2022 starts from a
   pre-trained LM);
2. :func:`sft_lm` -- supervised fine-tuning on reference responses (``pretrain.sft``), with WARM's
   "Baklava" checkpoints when ``config.baklava`` (Ramé et al. 2024 §3.3);
3. :func:`preference_data` -- Bradley-Terry-labelled training pairs with ``config.noise`` flipped
   labels and the oracle-labelled evaluation sets (``tasks.preference_dataset`` /
   ``evaluation_sets``);
4. :func:`fit_reward_models` -- ``M`` reward models in one vmap from a shared linear-probed head
   (``warm.train_reward_models``; WARM §3.1, §3.3), then ``warm.evaluate_warm``: pairwise
   accuracy of each member, their weight average (WA, WARM §3.1) and prediction ensemble (ENS),
   the WA-vs-ENS :func:`interpolation` between members 0 and 1 (WARM Fig. 3) and :func:`best_of_n`
   from the SFT policy selected by each (WARM Fig. 6);
5. :func:`policy_stage` -- REINFORCE / RLOO with a KL penalty to the SFT or EMA anchor against the
   proxy ``config.rl_proxy`` (``alignment.policy_gradient`` on ``loops.self_sampling``; WARP Alg. 1
   inner loop), evaluated every ``config.rl_eval_every`` updates, then the gold win rate of the
   policy against SFT (:func:`gold_win_rate`).

Nothing here prints: :func:`run` reports each finished stage to an optional
``progress(stage, value, seconds)`` callback.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from purerl.alignment import lm, pretrain, reward_model, tasks, warm, warp
from purerl.alignment import policy_gradient as pg
from purerl.core import divergence, validation
from purerl.core.tree import lerp
from purerl.loops import self_sampling as rl_loop

Proxy = Literal["wa", "ens", "member0"]
PROXIES = ("wa", "ens", "member0")
STAGES = ("pretrain", "sft", "prefs", "eval", "warm", "bon", "policy")  # the keys of stage_keys
SETS = ("in_distribution", "shifted", "train_corrupted", "train_clean", "train")
CURVE_KEYS = ("eval/reward", "eval/gold", "eval/kl_sft", "eval/spurious", "eval/length")
INTERPOLATION_LAMBDAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def default_lm_config(task: tasks.TaskConfig, **overrides: Any) -> lm.LMConfig:
    """The small trunk of the toy world: a 2-layer, ``d_model = 32``, 2-head decoder sized to the
    task's vocabulary and sequence length (notes §6.1), with ``overrides`` of any field."""
    given = {"vocab_size": task.vocab_size, "max_len": task.seq_len}
    given.update(d_model=32, num_heads=2, num_layers=2)
    given.update(overrides)
    return lm.LMConfig(**given)


def _default_rl() -> pg.RLConfig:
    # beta = 0.01 and lr = 1e-4: small enough that the proxy is hacked within 400 updates, slow
    # enough that 50-update evaluations see it happen (docs/alignment/index.md, the command line)
    return pg.RLConfig(beta=0.01, anchor="sft", learning_rate=1e-4)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Every setting of a pipeline run; the defaults are those of ``purerl align``.

    ``lm`` and ``warm`` default to ``None``: then :attr:`lm_config` is :func:`default_lm_config`
    of ``task`` and :attr:`warm_config` is ``WarmConfig(rm=RMConfig(lm=lm_config))`` (M = 4
    members, 500 updates each). Given explicitly, ``warm.rm.lm`` must be ``lm_config``.
    """

    seed: int = 0  # PRNG seed of the whole run (stage_keys)
    task: tasks.TaskConfig = tasks.TaskConfig()
    lm: lm.LMConfig | None = None  # None: default_lm_config(task)
    pretrain_steps: int = 400  # LM pre-training updates
    sft_steps: int = 400  # SFT updates (= pretrain_steps: the two stages share one compile)
    batch_size: int = 64  # sequences per LM update
    lm_lr: float = 3e-3  # Adam step size of pre-training and SFT
    pairs: int = 2000  # training preference pairs
    noise: float = 0.25  # fraction of flipped training labels (25% as in WARM's corruption runs)
    eval_pairs: int = 1000  # pairs per evaluation set (0: no evaluation sets)
    warm: warm.WarmConfig | None = None  # None: WarmConfig(rm=RMConfig(lm=lm_config))
    baklava: bool = False  # members start from 2 SFT checkpoints (WARM §3.3, "Baklava")
    bon_n: int = 16  # Best-of-N: samples per prompt (0: skip)
    bon_prompts: int = 200  # Best-of-N: prompts (0: skip)
    rl: pg.RLConfig = dataclasses.field(default_factory=_default_rl)
    rl_steps: int = 400  # REINFORCE updates (0: no policy stage)
    rl_eval_every: int = 50  # updates between evaluations of the policy
    rl_proxy: Proxy = "wa"  # the reward optimised: WARM's WA, the ENS, or member 0 alone
    rl_eval_prompts: int = 256  # held-out prompts of every policy evaluation

    def __post_init__(self):
        def check(name: str, low: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"PipelineConfig.{name} must be an int >= {low}, got {v!r}")

        for name in ("pretrain_steps", "sft_steps", "batch_size", "pairs", "rl_eval_every"):
            check(name, 1)
        for name in ("eval_pairs", "bon_n", "bon_prompts", "rl_steps"):
            check(name, 0)
        check("rl_eval_prompts", 1)
        if not self.lm_lr > 0:
            raise ValueError(f"PipelineConfig.lm_lr must be > 0, got {self.lm_lr}")
        if not 0.0 <= self.noise <= 1.0:
            raise ValueError(f"PipelineConfig.noise must be in [0, 1], got {self.noise}")
        if self.rl_proxy not in PROXIES:
            raise ValueError(
                f"PipelineConfig.rl_proxy must be one of {PROXIES}, got {self.rl_proxy!r}"
            )
        if not isinstance(self.rl, pg.RLConfig):
            raise ValueError(
                f"PipelineConfig.rl must be a policy_gradient.RLConfig, got {self.rl!r}"
            )
        if self.rl_steps > self.rl_eval_every and self.rl_steps % self.rl_eval_every:
            raise ValueError(
                f"PipelineConfig.rl_steps={self.rl_steps} must be a multiple of "
                f"rl_eval_every={self.rl_eval_every}"
            )
        pretrain.check_configs("PipelineConfig", self.lm_config, self.task)
        w = self.warm_config
        if w.rm.lm != self.lm_config:
            raise ValueError(
                f"PipelineConfig: warm.rm.lm={w.rm.lm} differs from the pipeline's LM "
                f"{self.lm_config}: the reward models start from the SFT trunk"
            )
        if w.batch_size > self.pairs:
            raise ValueError(
                f"PipelineConfig.pairs={self.pairs} is smaller than WarmConfig.batch_size="
                f"{w.batch_size}"
            )
        if self.baklava and w.num_members < 2:
            raise ValueError("PipelineConfig.baklava starts members from 2 SFT checkpoints: "
                             f"it needs WarmConfig.num_members >= 2, got {w.num_members}")  # fmt: skip
        if self.baklava and self.sft_steps < 2:
            raise ValueError(f"PipelineConfig.baklava keeps 2 SFT checkpoints: it needs sft_steps "
                             f">= 2, got {self.sft_steps}")  # fmt: skip

    @property
    def lm_config(self) -> lm.LMConfig:
        return default_lm_config(self.task) if self.lm is None else self.lm

    @property
    def warm_config(self) -> warm.WarmConfig:
        if self.warm is not None:
            return self.warm
        return warm.WarmConfig(rm=reward_model.RMConfig(lm=self.lm_config))

    @property
    def sft_checkpoints(self) -> tuple[int, ...]:
        """The Baklava SFT checkpoints ``(sft_steps // 2, sft_steps)``, or ``()``."""
        return (self.sft_steps // 2, self.sft_steps) if self.baklava else ()


class PolicyResult(NamedTuple):
    """The policy stage: final parameters, the evaluation curve ``{"updates": [rows], key: [rows]}``
    (row 0 is the SFT policy), the gold win rate against SFT and the wall time of the RL run."""

    params: Any
    curve: dict[str, list]
    gold_win_rate_vs_sft: float
    wall_time_s: float


class Results(NamedTuple):
    """Everything :func:`run` produced, stage by stage (``timings``: seconds per timed stage)."""

    config: PipelineConfig
    pretrained: pretrain.PretrainResult
    sft: pretrain.PretrainResult
    preferences: tasks.Preferences
    eval_sets: dict[str, tasks.Preferences]
    reward_models: warm.WarmRun
    wa_params: Any
    accuracy: dict[str, float]
    interpolation: dict[str, list[float]] | None
    best_of_n: dict[str, Any] | None
    policy: PolicyResult | None
    timings: dict[str, float]


# ---------------------------------------------------------------------------------------------------
# the stages


def stage_keys(seed: int) -> dict[str, jax.Array]:
    """One PRNG key per stage (``STAGES``), split from ``jax.random.key(seed)``."""
    return dict(zip(STAGES, jax.random.split(jax.random.key(seed), len(STAGES)), strict=True))


def pretrain_lm(config: PipelineConfig, key: jax.Array) -> pretrain.PretrainResult:
    """``config.pretrain_steps`` next-token updates from a fresh initialisation."""
    return pretrain.pretrain(
        key, config.lm_config, config.task, config.pretrain_steps, config.batch_size, config.lm_lr
    )


def sft_lm(config: PipelineConfig, key: jax.Array, params: Any) -> pretrain.PretrainResult:
    """``config.sft_steps`` SFT updates from ``params`` (the response-only NLL), keeping
    :attr:`PipelineConfig.sft_checkpoints` (stacked ``[2, ...]``) when ``config.baklava``."""
    return pretrain.sft(key, params, config.lm_config, config.task, config.sft_steps,
                        config.batch_size, config.lm_lr, config.sft_checkpoints)  # fmt: skip


def preference_data(
    config: PipelineConfig, prefs_key: jax.Array, eval_key: jax.Array
) -> tuple[tasks.Preferences, dict[str, tasks.Preferences]]:
    """``config.pairs`` training pairs (``config.noise`` of the labels flipped) and the
    oracle-labelled evaluation sets of ``config.eval_pairs`` pairs each (``{}`` when 0)."""
    prefs = tasks.preference_dataset(prefs_key, config.task, config.pairs, noise=config.noise)
    if not config.eval_pairs:
        return prefs, {}
    return prefs, tasks.evaluation_sets(eval_key, config.task, config.eval_pairs)


def fit_reward_models(
    config: PipelineConfig, key: jax.Array, init_params: Any, prefs: tasks.Preferences
) -> warm.WarmRun:
    """The ``M`` reward models of ``config.warm_config`` in one vmap from the SFT parameters
    ``init_params`` (stacked ``[K, ...]``: members cycle over the K checkpoints, WARM §3.3)."""
    return warm.train_reward_models(key, init_params, prefs, config.warm_config)


def interpolation(
    config: PipelineConfig, rm_params: Any, eval_sets: dict[str, tasks.Preferences]
) -> dict[str, list[float]] | None:
    """WA vs ENS accuracy on the shifted set along members 0 -> 1 (``INTERPOLATION_LAMBDAS``), or
    ``None`` with fewer than 2 members or no evaluation sets."""
    if config.warm_config.num_members < 2 or not eval_sets:
        return None
    member = lambda i: jax.tree.map(lambda x: x[i], rm_params)  # noqa: E731
    curve = warm.interpolation_curve(
        config.lm_config,
        member(0),
        member(1),
        np.linspace(0.0, 1.0, len(INTERPOLATION_LAMBDAS)),
        eval_sets["shifted"],
    )
    return {k: [float(x) for x in v] for k, v in curve.items()}


def best_of_n(
    config: PipelineConfig, key: jax.Array, sft_params: Any, rm_params: Any
) -> dict[str, Any] | None:
    """``warm.best_of_n_gold`` from the SFT policy, or ``None`` when ``bon_n`` or ``bon_prompts``
    is 0."""
    if not (config.bon_n and config.bon_prompts):
        return None
    return warm.best_of_n_gold(config.lm_config, config.task, sft_params, rm_params, key,
                               config.bon_prompts, config.bon_n)  # fmt: skip


def proxy_reward_fn(
    lm_config: lm.LMConfig, rm_params: Any, wa_params: Any, proxy: Proxy
) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``reward_fn(tokens [N, T], mask [N, T]) -> [N]`` of the proxy: the weight average ``wa``
    (WARM §3.1 step 3), the ensemble ``ens`` (mean of the ``M`` members' rewards) or ``member0``."""
    if proxy == "wa":
        return lambda t, m: reward_model.reward(lm_config, wa_params, t, m)
    if proxy == "member0":
        single = jax.tree.map(lambda x: x[0], rm_params)
        return lambda t, m: reward_model.reward(lm_config, single, t, m)
    if proxy == "ens":
        apply = lambda p, t, m: reward_model.reward(lm_config, p, t, m)  # noqa: E731
        return lambda t, m: warm.ensemble(apply, rm_params, t, m)
    raise ValueError(f"proxy_reward_fn: proxy must be one of {PROXIES}, got {proxy!r}")


def gold_win_rate(
    lm_config: lm.LMConfig,
    task: tasks.TaskConfig,
    prompts: jax.Array,
    params_a: Any,
    params_b: Any,
    key: jax.Array,
    temperature: float = 1.0,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Oracle win rate of policy A over policy B: one sample of each per prompt, the response with
    the higher gold reward wins, ties count 1/2 (research notes ``alignment.md`` §6.1 item 7, hard
    form). ``prompts [N, P]``.

    Returns:
      ``(win_rate, gold_a [N], gold_b [N])``.
    """

    def gold_of(params, k):
        s = lm.sample(lm_config, params, prompts, k, task.response_len, temperature,
                      eos_id=tasks.EOS_ID, pad_id=tasks.PAD_ID)  # fmt: skip
        return np.asarray(tasks.sequence_gold_reward(s.tokens, s.mask, task))

    key_a, key_b = jax.random.split(key)
    gold_a, gold_b = gold_of(params_a, key_a), gold_of(params_b, key_b)
    return float(np.mean((gold_a > gold_b) + 0.5 * (gold_a == gold_b))), gold_a, gold_b


def policy_stage(
    config: PipelineConfig, key: jax.Array, sft_params: Any, rm_params: Any, wa_params: Any
) -> PolicyResult | None:
    """REINFORCE / RLOO of the SFT policy against the proxy ``config.rl_proxy`` with the KL
    penalty of ``config.rl`` (WARP Alg. 1 inner loop), one compiled ``loops.self_sampling`` run, or
    ``None`` with ``rl_steps = 0``.

    Every ``rl_eval_every`` updates the policy is evaluated on ``rl_eval_prompts`` held-out prompts
    (``policy_gradient.make_evaluate``: proxy reward, gold reward, analytic KL to SFT, spurious
    tokens, length); at the end, the :func:`gold_win_rate` of the policy against SFT on the same
    prompts. Raises :class:`~purerl.core.divergence.Diverged` when an update's metrics or the
    policy's state go NaN/inf (the loop froze before that update) or an evaluation is non-finite.
    """
    if config.rl_steps == 0:
        return None
    reward_fn = proxy_reward_fn(config.lm_config, rm_params, wa_params, config.rl_proxy)
    prompt_key, train_key, win_key = jax.random.split(key, 3)
    prompts = tasks.sample_prompts(prompt_key, config.task, config.rl_eval_prompts)
    algo = pg.make(config.rl, config.lm_config, config.task, reward_fn)
    evaluate_fn = pg.make_evaluate(config.rl, config.lm_config, config.task, reward_fn,
                                   prompts=prompts)  # fmt: skip
    every = min(config.rl_eval_every, config.rl_steps)
    loop_config = rl_loop.LoopConfig(num_updates=config.rl_steps, eval_every=every)
    start = time.perf_counter()
    train = rl_loop.make_train(algo, loop_config, evaluate_fn)
    state, rows = jax.block_until_ready(jax.jit(train)(train_key, sft_params))
    seconds = time.perf_counter() - start
    rows = {k: np.asarray(v) for k, v in rows.items()}
    divergence.check_finite(rows, unit="update", checks=train.checks, runs=["the RL stage"])
    for k, v in rows.items():  # the evaluations of a finite policy (row 0: the SFT policy)
        if k.startswith("eval/") and not np.isfinite(v).all():
            row = int(np.argmin(np.isfinite(v)))
            step = int(rows["loop/updates"][row])
            raise divergence.Diverged("the RL stage", step, "update", f"evaluation {k}", "agent")
    win, _, _ = gold_win_rate(config.lm_config, config.task, prompts, state.params, sft_params,
                              win_key, config.rl.temperature)  # fmt: skip
    curve = {"updates": rows["loop/updates"].tolist(), **{k: rows[k].tolist() for k in CURVE_KEYS}}
    return PolicyResult(state.params, curve, win, seconds)


def run(
    config: PipelineConfig, progress: Callable[[str, Any, float], None] | None = None
) -> Results:
    """Every stage in order, keys from :func:`stage_keys`; ``progress(stage, value, seconds)``
    after ``pretrain``, ``sft``, ``preferences`` (value ``(prefs, eval_sets)``), ``reward_models``
    and ``policy`` (when run). Raises :class:`~purerl.core.divergence.Diverged` (naming the stage,
    its update, the quantity and ``config.seed``) when a training stage goes NaN/inf."""
    try:
        return _run(config, progress)
    except divergence.Diverged as e:
        raise e.relabel(f"{e.run}, seed {config.seed}") from None


def _run(config: PipelineConfig, progress: Callable[[str, Any, float], None] | None) -> Results:
    keys = stage_keys(config.seed)
    timings: dict[str, float] = {}
    report = progress or (lambda stage, value, seconds: None)

    def timed(name, fn, *args):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        timings[name] = time.perf_counter() - start
        return out

    pre = timed("pretrain", pretrain_lm, config, keys["pretrain"])
    report("pretrain", pre, timings["pretrain"])
    sft = timed("sft", sft_lm, config, keys["sft"], pre.params)
    report("sft", sft, timings["sft"])
    prefs, eval_sets = preference_data(config, keys["prefs"], keys["eval"])
    report("preferences", (prefs, eval_sets), 0.0)
    init = sft.checkpoints if config.baklava else sft.params
    rms = timed("reward_models", fit_reward_models, config, keys["warm"], init, prefs)
    report("reward_models", rms, timings["reward_models"])
    wa_params = warm.weight_average(rms.params)
    accuracy = timed("evaluate", warm.evaluate_warm, config.lm_config, rms.params, eval_sets, prefs)
    curve = interpolation(config, rms.params, eval_sets)
    bon = None
    if config.bon_n and config.bon_prompts:
        bon = timed("best_of_n", best_of_n, config, keys["bon"], sft.params, rms.params)
    policy = policy_stage(config, keys["policy"], sft.params, rms.params, wa_params)
    if policy is not None:
        timings["policy"] = policy.wall_time_s
        report("policy", policy, policy.wall_time_s)
    return Results(config, pre, sft, prefs, eval_sets, rms, wa_params, accuracy, curve, bon,
                   policy, timings)  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# what a run reports


def summary(results: Results) -> dict[str, Any]:
    """JSON-able numbers of a run: configs, final losses, the members' hyperparameters, all
    accuracies, the interpolation curve, the Best-of-N table, the policy curve and the timings."""
    r, c = results, results.config
    plan = r.reward_models.plan
    policy = None
    if r.policy is not None:
        policy = {
            "proxy": c.rl_proxy,
            "rl_config": dataclasses.asdict(c.rl),
            "steps": c.rl_steps,
            "curve": r.policy.curve,
            "gold_win_rate_vs_sft": r.policy.gold_win_rate_vs_sft,
            "wall_time_s": r.policy.wall_time_s,
        }
    return {
        "seed": c.seed,
        "task_config": dataclasses.asdict(c.task),
        "lm_config": dataclasses.asdict(c.lm_config),
        "warm_config": dataclasses.asdict(c.warm_config),
        "pretrain": {"steps": c.pretrain_steps, "final_nll": float(r.pretrained.losses[-1])},
        "sft": {
            "steps": c.sft_steps,
            "final_nll": float(r.sft.losses[-1]),
            "baklava_checkpoints": list(c.sft_checkpoints),
        },
        "preferences": {
            "pairs": c.pairs,
            "noise": c.noise,
            "flipped": int(np.sum(r.preferences.flipped)),
            "eval_pairs": c.eval_pairs,
        },
        "members": {
            "learning_rate": [float(x) for x in plan.learning_rate],
            "dropout_rate": [float(x) for x in plan.dropout_rate],
            "checkpoint": [int(x) for x in plan.checkpoint],
            "final_bt_loss": [float(x) for x in final_bt_loss(results)],
            "probe_accuracy": [float(x) for x in r.reward_models.metrics["probe/accuracy"]],
        },
        "accuracy": r.accuracy,
        "interpolation": r.interpolation,
        "best_of_n": r.best_of_n,
        "policy": policy,
        "wall_time_s": r.timings,
    }


def final_bt_loss(results: Results) -> np.ndarray:
    """``[M]``: each member's Bradley-Terry loss at its last update."""
    return np.asarray(results.reward_models.metrics["loss/bt"][-1])


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    """A markdown table, the first column left-aligned and the others right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report(results: Results) -> str:
    """The markdown report of a run: reward-model accuracies (WARM), Best-of-N, the interpolation
    curve and the policy curve with its win rate against SFT."""
    r, c = results, results.config
    m_count = c.warm_config.num_members
    accuracy, bon, curve = r.accuracy, r.best_of_n, r.interpolation
    models = [f"member_{i}" for i in range(m_count)] + ["member_mean", "wa", "ens"]
    names = {"member_mean": "members (mean)", "wa": "WARM (WA)", "ens": "ENS"}
    sets = [s for s in SETS if f"{s}/wa" in accuracy]
    header = ["reward model", "lr", "dropout", *(f"acc {s}" for s in sets)]
    if bon:
        header.append(f"BoN gold (N={bon['n'][-1]})")
    plan = r.reward_models.plan
    rows = []
    for m in models:
        if m.startswith("member_") and m != "member_mean":
            i = int(m.split("_")[1])
            label = f"member {i}" + (f" (ckpt {int(plan.checkpoint[i])})" if c.baklava else "")
            hp = [f"{float(plan.learning_rate[i]):.2g}", f"{float(plan.dropout_rate[i]):.2g}"]
        else:
            label, hp = names[m], ["", ""]
        row = [label, *hp, *(f"{accuracy[f'{s}/{m}']:.3f}" for s in sets)]
        if bon:
            row.append("" if m == "member_mean" else f"{bon[f'gold/{m}'][-1]:.3f}")
        rows.append(row)
    out = ["## Reward models (WARM)", "", md_table(header, rows)]
    if bon:
        out += ["", f"## Best-of-N from the SFT policy ({c.bon_prompts} prompts)", ""]
        bon_rows = [
            [names.get(m, m.replace("_", " ")), *(f"{g:.3f}" for g in bon[f"gold/{m}"])]
            for m in [*models, "gold"]
            if m != "member_mean"
        ]
        bon_rows[-1][0] = "gold (oracle)"
        out.append(md_table(["selected by", *(f"N={k}" for k in bon["n"])], bon_rows))
        out += ["", "gold reward of the selected response; N=1 is a plain SFT sample"]
    if curve:
        out += ["", "## Interpolating members 0 and 1 (shifted pairs)", ""]
        lam_rows = [
            [f"{lam:.2f}", f"{a:.3f}", f"{e:.3f}", f"{d:.3f}"]
            for lam, a, e, d in zip(
                curve["lambda"], curve["wa"], curve["ens"], curve["diagonal"], strict=True
            )
        ]
        out.append(md_table(["lambda", "acc WA", "acc ENS", "diagonal"], lam_rows))
    if r.policy is not None:
        p = r.policy.curve
        out += ["", f"## Policy: REINFORCE against {c.rl_proxy!r} ({c.rl_eval_prompts} "
                "held-out prompts)", ""]  # fmt: skip
        pol_rows = [
            [u, f"{rw:.3f}", f"{g:.3f}", f"{kl:.3f}", f"{sp:.2f}"]
            for u, rw, g, kl, sp in zip(p["updates"], p["eval/reward"], p["eval/gold"],
                                        p["eval/kl_sft"], p["eval/spurious"], strict=True)
        ]  # fmt: skip
        header = ["updates", "proxy reward", "gold reward", "KL to SFT", "spurious tokens"]
        out.append(md_table(header, pol_rows))
        out += ["", f"gold win rate of the policy vs SFT: {r.policy.gold_win_rate_vs_sft:.3f}"]
    return "\n".join(out)


def tree_arrays(prefix: str, tree: Any) -> dict[str, np.ndarray]:
    """``{"prefix/a/b": array}`` for the leaves of a pytree (dict keys, attribute names, indices)."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        parts = [str(getattr(p, "key", getattr(p, "name", getattr(p, "idx", p)))) for p in path]
        out["/".join([prefix, *parts])] = np.asarray(leaf)
    return out


def param_arrays(results: Results) -> dict[str, np.ndarray]:
    """Every trained parameter of a run, keyed ``stage/path``: ``pretrained``, ``sft``,
    ``rm/members`` (``[M, ...]``), ``rm/wa``, and ``sft_checkpoints`` / ``policy`` when run."""
    r = results
    arrays = {
        **tree_arrays("pretrained", r.pretrained.params),
        **tree_arrays("sft", r.sft.params),
        **tree_arrays("rm/members", r.reward_models.params),
        **tree_arrays("rm/wa", r.wa_params),
    }
    if r.config.baklava:
        arrays.update(tree_arrays("sft_checkpoints", r.sft.checkpoints))
    if r.policy is not None:
        arrays.update(tree_arrays("policy", r.policy.params))
    return arrays


# ------------------------------------------------------- the iterated WARP procedure (Algorithm 1)


@dataclasses.dataclass(frozen=True)
class WarpConfig:
    """Iterated WARP (Algorithm 1): ``I = len(steps)`` iterations of ``M = num_runs`` RL runs."""

    steps: tuple[int, ...] = (9000, 7000, 7000, 5000, 5000)  # T per iteration (sec. 4, I = 5)
    num_runs: int = 2  # M parallel RL runs per iteration (sec. 4 default; Fig. 4b goes to 5)
    liti_eta: float = 0.3  # eta of LITI towards the next init (sec. 4; Fig. 16 also 0.5)
    rl: pg.RLConfig = pg.RLConfig()  # EMA anchor, beta = 0.1, mu = 0.01 (sec. 4 defaults)
    eval_every: int = 500  # updates between evaluations inside each run (must divide each T)
    front_etas: tuple[float, ...] = (0.0, 0.1, 0.3, 0.5, 0.8, 1.0)  # LITI grid (notes 6.3 P5)
    num_eval_prompts: int = 256  # held-out prompts, the same for every evaluation
    slerp_eps: float = warp.DEFAULT_EPS  # sin(Omega) below this -> LERP (numerical guard)

    def __post_init__(self):
        if not isinstance(self.steps, tuple) or not self.steps:
            raise ValueError(
                f"WarpConfig.steps must be a non-empty tuple of ints, got {self.steps!r}"
            )
        for name in ("num_runs", "eval_every", "num_eval_prompts"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"WarpConfig.{name} must be a positive int, got {v!r}")
        for t in self.steps:
            if isinstance(t, bool) or not isinstance(t, int) or t < 1:
                raise ValueError(f"WarpConfig.steps must hold positive ints, got {self.steps!r}")
            if t % self.eval_every:
                raise ValueError(
                    f"WarpConfig.steps entry {t} is not a multiple of eval_every ({self.eval_every})"
                )
        if not isinstance(self.rl, pg.RLConfig):
            raise ValueError(f"WarpConfig.rl must be a policy_gradient.RLConfig, got {self.rl!r}")
        if not isinstance(self.front_etas, tuple) or not self.front_etas:
            raise ValueError(
                f"WarpConfig.front_etas must be a non-empty tuple of numbers, got {self.front_etas!r}"
            )
        for eta in (self.liti_eta, *self.front_etas):
            if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not np.isfinite(eta):
                raise ValueError(f"WarpConfig: LITI weights must be finite numbers, got {eta!r}")
        validation.non_negative("WarpConfig", slerp_eps=self.slerp_eps)

    @property
    def num_iterations(self) -> int:
        """``I``."""
        return len(self.steps)


class WarpResult(NamedTuple):
    """What :func:`run_warp` returns (``I`` iterations, ``M`` runs, ``E = len(front_etas)``).

    Attributes:
      inits: ``I + 1`` pytrees: ``inits[i]`` is ``theta_init`` of iteration ``i`` (``inits[0] =
        theta_sft``), ``inits[I]`` the LITI point a further iteration would start from.
      merged: ``I`` pytrees ``theta_slerp^i``.
      run_params: ``I`` pytrees with leaves ``[M, ...]``: the final policies of each iteration's runs.
      run_metrics: ``I`` dicts of arrays ``[M, rows]``: the loop metrics of each run
        (:mod:`purerl.loops.self_sampling`; row 0 evaluates ``theta_init``).
      iteration_fronts: ``I`` dicts of arrays ``[E]``: evaluation of ``lerp(inits[i], merged[i],
        eta)`` over ``front_etas`` (the per-iteration LITI curves of Fig. 4c).
      front: dict of arrays ``[E]``: evaluation of the output ``(1 - eta) theta_sft + eta
        theta_slerp^I`` over ``front_etas``, plus ``"eta"``.
      eval_prompts: ``[N, P]`` the held-out prompts of every evaluation.
      eval_key: the sampling key shared by every front evaluation (common random numbers).
    """

    inits: list
    merged: list
    run_params: list
    run_metrics: list
    iteration_fronts: list
    front: dict
    eval_prompts: jax.Array
    eval_key: jax.Array


def run_warp(
    key: jax.Array,
    sft_params: Any,
    config: WarpConfig,
    lm_config: lm.LMConfig,
    task_config: tasks.TaskConfig,
    reward_fn: Callable[[jax.Array, jax.Array], jax.Array],
    eval_prompts: ArrayLike | None = None,
    progress: bool = False,
    compiler_options: dict[str, Any] | None = None,
) -> WarpResult:
    """Iterated WARP, Algorithm 1 of the paper.

        theta_init <- theta_sft
        for i = 1..I:
          for m = 1..M in parallel (one vmapped, compiled lax.scan; runs differ only in their key,
                                    i.e. in prompt order and sampling noise):
            theta_m, theta_m^ema <- theta_init
            T_i steps of policy_gradient (REINFORCE/RLOO on r - beta log pi/pi_ema, EMA anchor)
          theta_slerp^i <- warp.slerp_uniform(theta_init, {theta_m})     (eq. 26, lambda = 1/M)
          theta_init <- (1 - eta) theta_init + eta theta_slerp^i     (LITI, eta = 0.3)
        output: {(1 - eta) theta_sft + eta theta_slerp^I : eta in front_etas}

    The outer loop over iterations is Python (the paper's); each iteration's ``M`` runs are one
    ``jax.jit(jax.vmap(rl_loop.make_train(...)))`` call, compiled once per distinct ``T``
    (without a progress bar). Every run starts a fresh Adam state and an EMA anchor equal to ``theta_init``.
    All front evaluations (:func:`purerl.alignment.policy_gradient.evaluate`: proxy reward, gold
    reward, analytic ``KL(pi || pi_sft)``) use the same prompts and sampling key, so points are
    compared on common random numbers; one compiled evaluator serves all of them.

    Args:
      key: PRNG key of the whole procedure.
      sft_params: ``theta_sft`` (LM parameters of ``lm_config``).
      config: a :class:`WarpConfig` (its ``rl`` field configures every run).
      lm_config, task_config, reward_fn: as in :func:`purerl.alignment.policy_gradient.make`.
      eval_prompts: ``[N, P]`` held-out prompts; default ``config.num_eval_prompts`` fresh ones.
      progress: show a progress bar per iteration (recompiles each iteration).
      compiler_options: XLA options for every ``jax.jit`` here (e.g.
        ``{"xla_backend_optimization_level": 0}`` trades run speed for compile speed in tests).

    Returns:
      a :class:`WarpResult`.
    """
    if not isinstance(config, WarpConfig):
        raise ValueError(f"run_warp needs a WarpConfig, got {type(config).__name__}")
    key, prompt_key, eval_key = jax.random.split(key, 3)
    if eval_prompts is None:
        eval_prompts = tasks.sample_prompts(prompt_key, task_config, config.num_eval_prompts)
    eval_prompts = jnp.asarray(eval_prompts, jnp.int32)
    if eval_prompts.ndim != 2 or eval_prompts.shape[1] != task_config.prompt_len:
        raise ValueError(
            f"run_warp: eval_prompts must be [N, prompt_len={task_config.prompt_len}], got "
            f"{eval_prompts.shape}"
        )
    algo = pg.make(config.rl, lm_config, task_config, reward_fn)
    evaluate_fn = pg.make_evaluate(
        config.rl, lm_config, task_config, reward_fn, prompts=np.asarray(eval_prompts)
    )
    etas = jnp.asarray(config.front_etas, jnp.float32)

    jit = functools.partial(jax.jit, compiler_options=compiler_options)

    @jit
    def evaluate_front(init, merged, sft, prompts, key):
        def one(eta):
            params = lerp(init, merged, eta)  # LITI (stage 3) along the front
            return pg.evaluate(
                config.rl, lm_config, task_config, reward_fn, params, sft, prompts, key
            )

        return jax.vmap(one)(etas)

    @jit
    def merge(init, stacked):  # SLERP of the M runs, then LITI to the next init
        merged = warp.slerp_uniform(init, stacked, config.slerp_eps)
        return merged, lerp(init, merged, config.liti_eta)  # LITI to the next init

    runners: dict[int, tuple[Callable, Any]] = {}  # T -> (compiled runs, their checks)
    theta_init = sft_params
    result = WarpResult([sft_params], [], [], [], [], {}, eval_prompts, eval_key)
    for i, num_updates in enumerate(config.steps):
        loop_config = rl_loop.LoopConfig(
            num_updates=num_updates,
            eval_every=config.eval_every,
            progress=progress,
            desc=f"WARP iteration {i + 1}/{config.num_iterations}",
        )
        (runner, checks), bar = (None, None), None
        if not progress and num_updates in runners:
            runner, checks = runners[num_updates]
        if runner is None:
            train = rl_loop.make_train(algo, loop_config, evaluate_fn)
            runner, checks = jit(jax.vmap(train, in_axes=(0, None, None))), train.checks
            bar = train.progress
            if not progress:
                runners[num_updates] = (runner, checks)
        key, runs_key = jax.random.split(key)
        states, metrics = runner(
            jax.random.split(runs_key, config.num_runs), theta_init, sft_params
        )
        if bar is not None:
            bar.close()
        runs = [f"WARP iteration {i + 1}, run {m}" for m in range(config.num_runs)]
        divergence.check_finite(metrics, unit="update", checks=checks, runs=runs)
        merged, next_init = merge(theta_init, states.params)
        result.iteration_fronts.append(
            evaluate_front(theta_init, merged, sft_params, eval_prompts, eval_key)
        )
        theta_init = next_init
        result.merged.append(merged)
        result.run_params.append(states.params)
        result.run_metrics.append(metrics)
        result.inits.append(theta_init)
    front = evaluate_front(sft_params, result.merged[-1], sft_params, eval_prompts, eval_key)
    result.front.update(front)
    result.front["eta"] = etas
    return result
