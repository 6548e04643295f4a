"""WARM: Weight Averaged Reward Models (Rame, Vieillard, Hussenot, Dadashi, Cideron, Bachem &
Ferret, ICML 2024): the merging math, on parameter pytrees.

WARM fine-tunes ``M`` reward models from one shared initialisation (the SFT trunk with a
linear-probed head, sec. 3.1) with diverse hyperparameters and data orders, then averages their
weights (sec. 3.1, step 3):

    phi_WARM = (1/M) sum_{i=1}^{M} phi_i                          -> :func:`weight_average`

The prediction ensemble it is compared with (ENS, sec. 1 and 3) costs ``M`` forward passes:

    r_ENS(x, y) = (1/M) sum_{i=1}^{M} r_{phi_i}(x, y)             -> :func:`ensemble`

and the linear interpolation of two RMs used to test linear mode connectivity (Obs. 1, eq. 2) and
"WA ~= ENS to first order" (Obs. 2, eq. 3) is

    phi_lambda = (1 - lambda) phi_1 + lambda phi_2      -> :func:`purerl.core.tree.lerp`

Members live in one *stacked* pytree (every leaf ``[M, ...]``), which is what ``jax.vmap`` over
``M`` training runs returns; :func:`stack` builds one from a list of trees. Trees that cannot be
averaged (a different structure, a leaf of another shape, disagreeing stack sizes, ``M = 0``) raise
``ValueError`` naming the offending path -- never a broadcast that silently mixes the wrong leaves.
The same checks serve :mod:`purerl.alignment.warp` (:func:`check_compatible`,
:func:`stack_size`).

The procedure on the toy LM world (research notes ``alignment.md`` §1.2 pseudocode, §6.2):

* shared init ``(theta_sft, omega)``, ``omega`` linear-probed with the trunk frozen (sec. 3.1,
  Remark 1), one per SFT checkpoint for "Baklava" (sec. 3.3)        -> :func:`shared_init`
* the diversity of the runs: learning rate, dropout, data order, SFT checkpoint (sec. 3.3)
                                                                    -> :func:`member_plan`
* ``M`` BT fine-tunings (Eq. 1) as ``lax.scan(vmap(update))``     -> :func:`train_reward_models`
* ``r_{phi_i}``, ``r_{phi_WARM}`` and ``r_ENS`` on sequences       -> :func:`score`
* accuracy of members / WA / ENS on ID, shifted, corrupted and clean pairs (Obs. 2-3)
                                                                    -> :func:`evaluate_warm`
* ``Acc(r_{(1-lam) phi_1 + lam phi_2})`` vs ``Acc((1-lam) r_1 + lam r_2)`` vs the diagonal
  (Obs. 1-2, Eq. 2-3)                                               -> :func:`interpolation_curve`
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from purerl.alignment import lm, reward_model, tasks
from purerl.alignment.tasks import Preferences
from purerl.core import divergence, validation
from purerl.core.tree import lerp
from purerl.core.types import Metrics


def _describe(path: tuple) -> str:
    return jax.tree_util.keystr(path) or "<root>"


def _leaves_with_paths(tree: Any) -> list[tuple[str, Any]]:
    return [(_describe(p), leaf) for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


def check_compatible(owner: str, a: Any, b: Any, names: tuple[str, str] = ("a", "b")) -> None:
    """Raise ``ValueError`` unless pytrees ``a`` and ``b`` have the same structure and leaf shapes.

    The message names the first path that differs (``['layer']['w']``), or both tree structures
    when the leaf paths agree but the containers do not (a dict against a NamedTuple, a ``None``).
    Shapes are static, so this costs nothing inside ``jit``.

    Args:
      owner: the calling function, for the message.
      a, b: the two pytrees.
      names: how the message calls ``a`` and ``b``.
    """
    la, lb = _leaves_with_paths(a), _leaves_with_paths(b)
    paths_a, paths_b = [p for p, _ in la], [p for p, _ in lb]
    if paths_a != paths_b:
        only_a = [p for p in paths_a if p not in set(paths_b)]
        only_b = [p for p in paths_b if p not in set(paths_a)]
        details = [f"{names[0]} has a leaf at {only_a[0]} that {names[1]} lacks"] if only_a else []
        if only_b:
            details.append(f"{names[1]} has a leaf at {only_b[0]} that {names[0]} lacks")
        detail = "; ".join(details) or "their leaves are in a different order"
        raise ValueError(f"{owner}: {names[0]} and {names[1]} have different structures: {detail}")
    if jax.tree.structure(a) != jax.tree.structure(b):
        raise ValueError(
            f"{owner}: {names[0]} and {names[1]} have different tree structures: "
            f"{jax.tree.structure(a)} vs {jax.tree.structure(b)}"
        )
    for (path, x), (_, y) in zip(la, lb, strict=True):
        if np.shape(x) != np.shape(y):
            raise ValueError(
                f"{owner}: leaf {path} has shape {np.shape(x)} in {names[0]} but {np.shape(y)} in "
                f"{names[1]}"
            )


def stack_size(owner: str, stacked: Any, name: str = "stacked_params", like: Any = None) -> int:
    """The number ``M >= 1`` of members of a stacked pytree (every leaf ``[M, ...]``).

    Raises ``ValueError`` naming the path when the tree has no leaves, a leaf is a scalar, the
    leading sizes disagree, ``M = 0``, or (with ``like``) a leaf is not ``[M, *like_leaf.shape]``.

    Args:
      owner: the calling function, for the message.
      stacked: the stacked pytree.
      name: how the message calls it.
      like: optional unstacked pytree every member must match (e.g. WARP's ``init``).
    """
    leaves = _leaves_with_paths(stacked)
    if not leaves:
        raise ValueError(f"{owner}: {name} has no array leaves (an empty stack of members)")
    sizes = {}
    for path, x in leaves:
        if np.ndim(x) < 1:
            raise ValueError(
                f"{owner}: leaf {path} of {name} is a scalar; stacked leaves must be [M, ...]"
            )
        sizes.setdefault(np.shape(x)[0], path)
    if len(sizes) > 1:
        found = ", ".join(f"{m} at {p}" for m, p in sizes.items())
        raise ValueError(
            f"{owner}: the leaves of {name} disagree on the number of members M: {found}"
        )
    (m,) = sizes
    if m == 0:
        raise ValueError(f"{owner}: {name} is an empty stack (M = 0 members)")
    if like is not None:
        member = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x)[1:], jnp.float32), stacked)
        check_compatible(owner, like, member, ("the reference tree", f"each member of {name}"))
    return int(m)


def stack(trees: Sequence[Any]) -> Any:
    """Stack a list of ``M`` compatible pytrees into one tree with leaves ``[M, ...]``.

    Raises ``ValueError`` for an empty list or a member whose structure or leaf shapes differ from
    the first (naming the member and the path).
    """
    trees = list(trees)
    if not trees:
        raise ValueError("stack: got an empty list of trees (M = 0 members)")
    for i, tree in enumerate(trees[1:], start=1):
        check_compatible("stack", trees[0], tree, ("member 0", f"member {i}"))
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def weight_average(stacked_params: Any) -> Any:
    """Uniform weight average ``phi_WARM = (1/M) sum_i phi_i`` over the leading axis (WARM 3.1).

    Args:
      stacked_params: pytree with leaves ``[M, ...]`` (e.g. ``M`` RMs trained under ``jax.vmap``).

    Returns:
      one pytree with leaves ``[...]``.
    """
    stack_size("weight_average", stacked_params)
    return jax.tree.map(_mean_members, stacked_params)


@jax.jit
def _mean_members(x: jax.Array) -> jax.Array:
    return jnp.mean(x, axis=0)


def ensemble(apply_fn: Callable[..., Any], stacked_params: Any, *inputs: Any) -> Any:
    """Prediction ensemble ``(1/M) sum_i apply_fn(phi_i, *inputs)`` (the ENS baseline of WARM).

    ``apply_fn`` is vmapped over the members (inputs shared), then every output leaf is averaged
    over the members. For reward models, ``apply_fn(params, x, y) -> [B]`` rewards.

    Args:
      apply_fn: ``apply_fn(params, *inputs) -> pytree of arrays`` for one member.
      stacked_params: pytree with leaves ``[M, ...]``.
      *inputs: passed unchanged to every member.

    Returns:
      the member-averaged outputs (same structure as one member's).
    """
    stack_size("ensemble", stacked_params)
    in_axes = (0,) + (None,) * len(inputs)
    outputs = jax.vmap(apply_fn, in_axes=in_axes)(stacked_params, *inputs)
    return jax.tree.map(_mean_members, outputs)


# ===================================================================================================
# The WARM procedure on the toy LM world: shared linear-probed init, M diverse fine-tunings under one
# vmap, and the evaluations of WARM Obs. 1-3 (research notes ``alignment.md`` §6.2, W1-W5).


@dataclasses.dataclass(frozen=True)
class WarmConfig:
    """``M`` diverse Bradley-Terry fine-tunings from a shared linear-probed init (WARM §3.1, §3.3).

    Member ``i`` fine-tunes with step size ``learning_rates[i % len]`` and dropout
    ``dropout_rates[i % len]`` (the grid is cycled, so members differ in both when the lengths are
    coprime); ``rm.learning_rate`` and ``rm.dropout`` are not used. ``rm.lm`` is the trunk.
    """

    rm: reward_model.RMConfig = reward_model.RMConfig()  # trunk, clipping, linear-probe settings
    num_members: int = 4  # M; WARM §5 uses M in {1, ..., 6} (notes §6.2: {1, 2, 4, 6})
    steps: int = 500  # updates per member (WARM: 10k on PaLM-XXS; notes §6.2: ~1,000 here)
    batch_size: int = 32  # pairs per update (WARM App. B.3 not retrieved; toy scale)
    # WARM §3.3 / Fig. 3(c) varies the learning rate (1e-4 vs 4e-5, a ratio of 2.5): same ratio here.
    learning_rates: tuple[float, ...] = (1e-3, 4e-4)
    dropout_rates: tuple[float, ...] = (0.0, 0.05, 0.1)  # notes §6.1 item 6: {0, 0.05, 0.1}
    shared_data_order: bool = (
        False  # True: every member sees the same minibatches (no order diversity)
    )

    def __post_init__(self):
        if not isinstance(self.rm, reward_model.RMConfig):
            raise ValueError(f"WarmConfig.rm must be an RMConfig, got {type(self.rm).__name__}")
        for name in ("num_members", "steps", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"WarmConfig.{name} must be an int >= 1, got {v!r}")
        for name in ("learning_rates", "dropout_rates"):
            v = getattr(self, name)
            if not isinstance(v, tuple) or not v:
                raise ValueError(f"WarmConfig.{name} must be a non-empty tuple, got {v!r}")
        validation.positive(
            "WarmConfig", **{f"learning_rates[{i}]": v for i, v in enumerate(self.learning_rates)}
        )
        for i, v in enumerate(self.dropout_rates):
            validation.non_negative("WarmConfig", **{f"dropout_rates[{i}]": v})
            if not v < 1.0:
                raise ValueError(f"WarmConfig.dropout_rates[{i}] must be in [0, 1), got {v!r}")
        if not isinstance(self.shared_data_order, bool):
            raise ValueError(
                f"WarmConfig.shared_data_order must be a bool, got {self.shared_data_order!r}"
            )


class MemberPlan(NamedTuple):
    """What makes the ``M`` fine-tunings diverse (WARM §3.3); every field ``[M]``."""

    learning_rate: jax.Array  # [M] float32 Adam step size
    dropout_rate: jax.Array  # [M] float32
    checkpoint: jax.Array  # [M] int32: which SFT checkpoint (Baklava) the member starts from
    key: jax.Array  # [M] keys: each member's dropout stream
    order_key: jax.Array  # [M] keys: each member's minibatch order (data-order diversity)


class WarmRun(NamedTuple):
    params: reward_model.RMParams  # the M fine-tuned reward models, every leaf [M, ...]
    init: reward_model.RMParams  # the K linear-probed initialisations (one per SFT checkpoint)
    plan: MemberPlan  # the members' hyperparameters and keys
    metrics: (
        Metrics  # "probe/loss", "probe/accuracy" [K]; "loss/bt", "rm/accuracy", "rm/margin" [S, M]
    )


class Scores(NamedTuple):
    members: jax.Array  # [M, B] r_{phi_i}(x, y)
    wa: jax.Array  # [B] r_{phi_WARM}(x, y), the weight average's reward
    ens: jax.Array  # [B] (1/M) sum_i r_{phi_i}(x, y), the prediction ensemble


def member_plan(key: jax.Array, config: WarmConfig, num_checkpoints: int = 1) -> MemberPlan:
    """The diversity of the ``M`` members (WARM §3.3): member ``i`` gets ``learning_rates[i % L]``,
    ``dropout_rates[i % D]``, SFT checkpoint ``i % K`` and keys ``split(fold_in(key, i))`` (its
    dropout stream and its data order; with ``shared_data_order`` every member takes member 0's
    order)."""
    m = config.num_members
    if isinstance(num_checkpoints, bool) or not isinstance(num_checkpoints, (int, np.integer)):
        raise ValueError(f"member_plan: num_checkpoints must be an int, got {num_checkpoints!r}")
    if not 1 <= num_checkpoints <= m:
        raise ValueError(
            f"member_plan: {num_checkpoints} SFT checkpoints for M={m} members; need 1 <= K <= M "
            "(a checkpoint no member starts from would be wasted)"
        )
    idx = np.arange(m)
    keys = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(key, i)))(jnp.asarray(idx))
    order = keys[:, 1] if not config.shared_data_order else jnp.broadcast_to(keys[0, 1], (m,))
    return MemberPlan(
        learning_rate=jnp.asarray(
            [config.learning_rates[i % len(config.learning_rates)] for i in idx], jnp.float32
        ),
        dropout_rate=jnp.asarray(
            [config.dropout_rates[i % len(config.dropout_rates)] for i in idx], jnp.float32
        ),
        checkpoint=jnp.asarray(idx % num_checkpoints, jnp.int32),
        key=keys[:, 0],
        order_key=order,
    )


def sft_stack(owner: str, sft_params: Any, lm_config: lm.LMConfig) -> tuple[Any, int]:
    """``(checkpoints [K, ...], K)`` from one SFT parameter tree (``K = 1``) or a stack of ``K``
    checkpoints of one SFT run (WARM §3.3 "Baklava"); ``ValueError`` if it is neither for
    ``lm_config``."""
    like = jax.eval_shape(
        lm.make_lm(lm_config).init, jax.random.key(0), jnp.zeros((1, 1), jnp.int32)
    )
    try:
        check_compatible(owner, like, sft_params, ("the LMConfig's parameters", "sft_params"))
        return jax.tree.map(lambda x: jnp.asarray(x)[None], sft_params), 1
    except ValueError as single:
        try:
            k = stack_size(owner, sft_params, "sft_params", like=like)
        except ValueError as stacked:
            raise ValueError(
                f"{owner}: sft_params is neither LM parameters for {lm_config} nor a stack of "
                f"them ({_after_owner(single)}; as a stack: {_after_owner(stacked)})"
            ) from None
        return jax.tree.map(jnp.asarray, sft_params), k


def _after_owner(e: Exception) -> str:
    return str(e).split(": ", 1)[-1]


def shared_init(
    key: jax.Array, sft_params: Any, prefs: Preferences, config: WarmConfig
) -> tuple[reward_model.RMParams, Metrics]:
    """WARM §3.1 step 1: ``(theta_sft, omega)`` with ``omega`` linear-probed on ``prefs``, trunk
    frozen (Remark 1), for each of the ``K`` SFT checkpoints in ``sft_params`` (one tree or a
    Baklava stack); every probe starts from the same head ``w ~ N(0, 1/D)`` drawn with ``key``.

    Returns ``(RMParams [K, ...], {"probe/loss": [K], "probe/accuracy": [K]})``.
    """
    stacked, _ = sft_stack("shared_init", sft_params, config.rm.lm)
    reward_model.check_preferences(prefs, config.rm.lm, "shared_init")
    params, metrics, codes = _shared_init(config.rm, key, stacked, prefs)
    _check_probes(codes, config.rm)
    return params, metrics


@functools.partial(jax.jit, static_argnames="rm_config")
def _shared_init(rm_config, key, stacked, prefs):
    def probe(trunk):
        params = reward_model.init_reward_model(key, trunk, rm_config)
        params, m = reward_model.linear_probe(rm_config, params, prefs)
        return params, {"probe/loss": m["loss/probe"], "probe/accuracy": m["rm/accuracy"]}

    params, metrics = jax.vmap(probe)(stacked)
    # The probe's outcome per checkpoint: one NaN/inf check of its metrics and head ([K] codes).
    codes = jax.vmap(lambda m, p: divergence.nonfinite_code((m, p.head)))(metrics, params)
    return params, metrics, codes


def _check_probes(codes: jax.Array, rm_config: reward_model.RMConfig) -> None:
    """Raise :class:`~purerl.core.divergence.Diverged` if a linear probe ended non-finite."""
    names = ["probe metric probe/accuracy", "probe metric probe/loss", "head"]
    runs = [f"the linear probe on SFT checkpoint {k}" for k in range(len(codes))]
    steps = np.where(np.asarray(codes) >= 0, rm_config.probe_steps, -1)
    divergence.raise_if_diverged(steps, codes, names, runs)


def train_reward_models(
    key: jax.Array, sft_params: Any, prefs: Preferences, config: WarmConfig
) -> WarmRun:
    """The ``M`` diverse reward models that WARM averages (WARM §3.1, steps 1-2), in one vmap.

    1. ``init_key, plan_key = split(key)``; :func:`shared_init` linear-probes the head on each SFT
       checkpoint (one, or ``K`` for Baklava);
    2. :func:`member_plan` gives member ``i`` its learning rate, dropout rate, checkpoint and keys;
    3. every member minimises the BT loss ``-mean log sigmoid(r(x, y+) - r(x, y-))`` (WARM Eq. 1)
       for ``config.steps`` minibatches of ``config.batch_size`` pairs in its own order
       (:func:`purerl.alignment.reward_model.minibatches`), all ``M`` runs as
       ``lax.scan(vmap(update))`` -- the same numbers as ``M`` separate runs.

    Args:
      key: PRNG key.
      sft_params: the SFT LM parameters, or ``K <= M`` of its checkpoints stacked ``[K, ...]``.
      prefs: ``N >= batch_size`` training pairs (:func:`purerl.alignment.tasks.preference_dataset`).
      config: :class:`WarmConfig`.
    Returns:
      :class:`WarmRun`: ``params`` (stacked ``[M, ...]``; average them with
      :func:`weight_average`), ``init``, ``plan``, ``metrics``.
    Raises:
      purerl.core.divergence.Diverged: a linear probe ended with a NaN/inf loss or head, or a
        member's update gave a NaN/inf metric or state (e.g. a huge learning rate); each member's
        scan freezes before its first such update, and the error names the first diverged member,
        the update and the quantity.
    """
    if not isinstance(config, WarmConfig):
        raise ValueError(f"train_reward_models: config must be a WarmConfig, got {type(config)}")
    stacked, k = sft_stack("train_reward_models", sft_params, config.rm.lm)
    n = reward_model.check_preferences(prefs, config.rm.lm, "train_reward_models")
    if config.batch_size > n:
        raise ValueError(
            f"train_reward_models: WarmConfig.batch_size={config.batch_size} > N={n} training pairs"
        )
    init_key, plan_key = jax.random.split(key)
    plan = member_plan(plan_key, config, k)
    init, probe_metrics, codes = _shared_init(config.rm, init_key, stacked, prefs)
    _check_probes(codes, config.rm)
    states, metrics, bad_step, bad_what = _fine_tune(config, init, prefs, plan)
    if np.any(np.asarray(bad_step) >= 0):
        names = divergence.update_names(metrics, states)
        runs = [f"reward model member {i}" for i in range(config.num_members)]
        divergence.raise_if_diverged(bad_step, bad_what, names, runs)
    return WarmRun(params=states.params, init=init, plan=plan, metrics={**probe_metrics, **metrics})


@functools.partial(jax.jit, static_argnames="config")
def _fine_tune(config, init, prefs, plan):
    step = reward_model.make_train_step(config.rm)
    members = jax.tree.map(lambda x: x[plan.checkpoint], init)
    states = jax.vmap(step.init)(members, plan.key, plan.learning_rate, plan.dropout_rate)
    batches = jax.vmap(
        lambda k: reward_model.minibatches(k, prefs, config.batch_size, config.steps)
    )(plan.order_key)
    batches = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), batches)  # [S, M, B, ...]

    def body(carry, xs):  # every member under the divergence guard (its own freeze)
        states, bad_step, bad_what = carry
        batch, t = xs
        guarded = lambda s, b, bs, bw: divergence.guarded_update(step.update, s, b, bs, bw, t)  # noqa: E731
        states, metrics, bad_step, bad_what = jax.vmap(guarded)(states, batch, bad_step, bad_what)
        return (states, bad_step, bad_what), metrics

    none = jnp.full((config.num_members,), -1, jnp.int32)
    steps = jnp.arange(1, config.steps + 1, dtype=jnp.int32)
    (states, bad_step, bad_what), metrics = jax.lax.scan(
        body, (states, none, none), (batches, steps)
    )
    return states, metrics, bad_step, bad_what


# ----------------------------------------------------------------------------- evaluation


def score(
    lm_config: lm.LMConfig,
    stacked_params: reward_model.RMParams,
    tokens: ArrayLike,
    mask: ArrayLike,
) -> Scores:
    """Rewards of every member, of the weight average and of the prediction ensemble.

    ``members[i] = r_{phi_i}``, ``wa = r_{(1/M) sum_i phi_i}`` (WARM §3.1 step 3), ``ens = (1/M)
    sum_i r_{phi_i}`` (the ENS baseline; the mean of ``members``, no extra forward pass).

    Args:
      stacked_params: ``RMParams`` with leaves ``[M, ...]``.
      tokens, mask: ``[B, T]`` sequences and response masks (as in
        :func:`purerl.alignment.reward_model.reward`).
    """
    stack_size("score", stacked_params)
    lm.check_tokens(tokens, lm_config)
    lm.check_mask(mask, tokens)
    reward_model.check_head(
        jax.tree.map(lambda x: x[0], stacked_params.trunk), stacked_params.head[0], lm_config
    )
    return _score(lm_config, stacked_params, jnp.asarray(tokens), jnp.asarray(mask))


@functools.partial(jax.jit, static_argnames="lm_config")
def _score(lm_config, stacked_params, tokens, mask):
    one = lambda p: reward_model.reward(lm_config, p, tokens, mask)
    members = jax.vmap(one)(stacked_params)
    wa = one(jax.tree.map(_mean_members, stacked_params))
    return Scores(members=members, wa=wa, ens=jnp.mean(members, axis=0))


def _pairs(sets: dict[str, Preferences]) -> tuple[jax.Array, jax.Array, dict[str, slice]]:
    """All chosen then all rejected sequences of every set, in one batch (one forward pass)."""
    tokens, masks, where, start = [], [], {}, 0
    for name, p in sets.items():
        n = np.shape(p.chosen)[0]
        tokens += [jnp.asarray(p.chosen), jnp.asarray(p.rejected)]
        masks += [jnp.asarray(p.chosen_mask), jnp.asarray(p.rejected_mask)]
        where[name] = slice(start, start + 2 * n)
        start += 2 * n
    return jnp.concatenate(tokens), jnp.concatenate(masks), where


def evaluate_warm(
    lm_config: lm.LMConfig,
    stacked_params: reward_model.RMParams,
    eval_sets: dict[str, Preferences],
    train_prefs: Preferences | None = None,
) -> dict[str, float]:
    """Pairwise accuracy ``mean 1{r(x, y+) >= r(x, y-)}`` of each member, their mean, the weight
    average and the prediction ensemble, on each set (WARM Obs. 2-3, Fig. 4-5).

    Keys are ``"<set>/<model>"`` with model ``member_<i>``, ``member_mean`` (the mean of the
    members' accuracies), ``wa`` and ``ens``; sets are the names of ``eval_sets`` (e.g.
    ``in_distribution`` and ``shifted`` from :func:`purerl.alignment.tasks.evaluation_sets`) and,
    with ``train_prefs``, ``train`` plus -- when some labels were flipped -- ``train_corrupted``
    (accuracy against the *flipped* labels: how much each model memorised the noise; WARM Obs. 3
    expects ``wa < ens``) and ``train_clean``. Accuracies are Python floats in ``[0, 1]``.
    """
    stack_size("evaluate_warm", stacked_params)
    if not isinstance(eval_sets, dict):
        raise ValueError(
            f"evaluate_warm: eval_sets must be a dict of Preferences, got {eval_sets!r}"
        )
    sets = dict(eval_sets)
    if train_prefs is not None:
        if "train" in sets:
            raise ValueError("evaluate_warm: eval_sets may not be called 'train' with train_prefs")
        sets["train"] = train_prefs
    if not sets:
        raise ValueError("evaluate_warm: no preference sets to evaluate")
    for name, p in sets.items():
        reward_model.check_preferences(p, lm_config, f"evaluate_warm ({name!r})")
    tokens, mask, where = _pairs(sets)
    s = score(lm_config, stacked_params, tokens, mask)
    rows = {f"member_{i}": r for i, r in enumerate(np.asarray(s.members))}
    rows.update(wa=np.asarray(s.wa), ens=np.asarray(s.ens))
    subsets = {name: (name, None) for name in sets}
    if train_prefs is not None and getattr(train_prefs, "flipped", None) is not None:
        flipped = np.asarray(train_prefs.flipped, bool)
        if flipped.any():
            subsets["train_corrupted"] = ("train", flipped)
            if not flipped.all():
                subsets["train_clean"] = ("train", ~flipped)
    out: dict[str, float] = {}
    for label, (name, keep) in subsets.items():
        for model, r in rows.items():
            r_set = r[where[name]]
            n = r_set.shape[0] // 2
            correct = r_set[:n] >= r_set[n:]  # ties count as correct (WARM §3)
            out[f"{label}/{model}"] = float(np.mean(correct if keep is None else correct[keep]))
        m = np.shape(stacked_params.head)[0]
        out[f"{label}/member_mean"] = float(np.mean([out[f"{label}/member_{i}"] for i in range(m)]))
    return out


def interpolation_curve(
    lm_config: lm.LMConfig,
    phi1: reward_model.RMParams,
    phi2: reward_model.RMParams,
    lams: ArrayLike,
    prefs: Preferences,
) -> dict[str, np.ndarray]:
    """Accuracy along the segment between two reward models (WARM Obs. 1-2, Eq. 2-3; LMC).

    For each ``lam``: ``"wa"`` = ``Acc(r_{(1 - lam) phi1 + lam phi2})`` (weight interpolation),
    ``"ens"`` = ``Acc((1 - lam) r_phi1 + lam r_phi2)`` (prediction interpolation), ``"diagonal"`` =
    ``(1 - lam) Acc(r_phi1) + lam Acc(r_phi2)``; LMC (Eq. 2) is ``wa >= diagonal``, and Obs. 2 is
    ``wa ~= ens``. All ``[L]`` numpy arrays, plus ``"lambda"``.

    Args:
      phi1, phi2: two ``RMParams`` (e.g. members ``0`` and ``1`` of :func:`train_reward_models`).
      lams: ``[L]`` interpolation weights on ``phi2``.
      prefs: the pairs to score.
    """
    check_compatible("interpolation_curve", phi1, phi2, ("phi1", "phi2"))
    lams = np.asarray(lams, np.float32)
    if lams.ndim != 1 or lams.size == 0:
        raise ValueError(f"interpolation_curve: lams must be a non-empty [L] array, got {lams!r}")
    reward_model.check_preferences(prefs, lm_config, "interpolation_curve")
    reward_model.check_head(phi1.trunk, phi1.head, lm_config)
    tokens, mask, _ = _pairs({"prefs": prefs})
    wa, ens, diag = _interpolation(lm_config, phi1, phi2, jnp.asarray(lams), tokens, mask)
    return {
        "lambda": lams,
        "wa": np.asarray(wa),
        "ens": np.asarray(ens),
        "diagonal": np.asarray(diag),
    }


@functools.partial(jax.jit, static_argnames="lm_config")
def _interpolation(lm_config, phi1, phi2, lams, tokens, mask):
    n = tokens.shape[0] // 2

    def acc(r):
        return jnp.mean((r[:n] >= r[n:]).astype(jnp.float32))

    r1 = reward_model.reward(lm_config, phi1, tokens, mask)
    r2 = reward_model.reward(lm_config, phi2, tokens, mask)
    wa = jax.lax.map(
        lambda lam: acc(reward_model.reward(lm_config, lerp(phi1, phi2, lam), tokens, mask)),
        lams,
    )
    ens = jax.vmap(lambda lam: acc((1.0 - lam) * r1 + lam * r2))(lams)
    diag = (1.0 - lams) * acc(r1) + lams * acc(r2)
    return wa, ens, diag


def best_of_n_gold(
    lm_config: lm.LMConfig,
    task_config: tasks.TaskConfig,
    policy_params: Any,
    stacked_params: reward_model.RMParams,
    key: jax.Array,
    num_prompts: int,
    n: int,
    temperature: float = 1.0,
) -> dict[str, Any]:
    """Best-of-N selected by each reward model, scored by the gold reward (WARM Fig. 6-7, notes
    §6.2 W5).

    ``n`` responses per prompt are sampled once from ``policy_params`` (the SFT policy); for each
    ``k = 1, 2, 4, .., n`` every reward model (each member, the weight average ``wa``, the ensemble
    ``ens``) picks the best of the first ``k`` (ties to the first, :func:`numpy.argmax`), and the
    table reports the mean gold reward and spurious-token count of the picks. ``gold`` selects by
    the gold reward itself: the oracle ceiling. ``k = 1`` is a plain sample. Nested prefixes share
    samples, so the curves over ``k`` are paired (common random numbers).

    Returns:
      ``{"n": [ks], "kl_bound": [log k - (k - 1)/k], "gold/<model>": [..], "spurious/<model>": [..]}``
      with models ``member_<i>``, ``wa``, ``ens``, ``gold``.
    """
    for name, v in (("num_prompts", num_prompts), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"best_of_n_gold: {name} must be an int >= 1, got {v!r}")
    stack_size("best_of_n_gold", stacked_params)
    prompt_key, sample_key = jax.random.split(key)
    prompts = jnp.repeat(tasks.sample_prompts(prompt_key, task_config, num_prompts), n, axis=0)
    sample = lm.sample(
        lm_config,
        policy_params,
        prompts,
        sample_key,
        task_config.response_len,
        temperature=temperature,
        eos_id=tasks.EOS_ID,
        pad_id=tasks.PAD_ID,
    )
    gold = np.asarray(tasks.sequence_gold_reward(sample.tokens, sample.mask, task_config))
    _, response, mask = tasks.split(sample.tokens, sample.mask, task_config)
    spurious = np.asarray(tasks.spurious_count(response, mask)).reshape(num_prompts, n)
    gold = gold.reshape(num_prompts, n)
    scores = score(lm_config, stacked_params, sample.tokens, sample.mask)
    rewards = {f"member_{i}": r for i, r in enumerate(np.asarray(scores.members))}
    rewards.update(wa=np.asarray(scores.wa), ens=np.asarray(scores.ens), gold=gold.reshape(-1))
    ks = sorted({2**i for i in range(int(n).bit_length()) if 2**i <= n} | {int(n)})
    rows = np.arange(num_prompts)
    table: dict[str, Any] = {"n": ks, "kl_bound": [float(np.log(k) - (k - 1) / k) for k in ks]}
    for name, r in rewards.items():
        r = r.reshape(num_prompts, n)
        picks = [np.argmax(r[:, :k], axis=1) for k in ks]
        table[f"gold/{name}"] = [float(gold[rows, p].mean()) for p in picks]
        table[f"spurious/{name}"] = [float(spurious[rows, p].mean()) for p in picks]
    return table
