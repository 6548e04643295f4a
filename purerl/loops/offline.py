"""Offline loop: dataset on the device -> sampled minibatches -> updates, one compiled program.

    data = offline.prepare_data(dataset, offline.Config(), algo_module)   # host -> device, once
    train = offline.make_train(algo, eval_env, config, ref_scores=(r_min, r_max))
    carry, metrics = loops.run_seeds(train, key, num_seeds=5, args=(data,))

The dataset is an *argument* of the compiled run (shared by all vmapped seeds, never copied per
seed and never baked into the program as a constant). Every update samples ``batch_size``
transitions uniformly with replacement (TD3+BC, CQL and the authors' code of the anti-exploration
paper all do) inside the ``lax.scan``; every ``eval_every`` updates a deterministic evaluation runs
in the env and one metrics row is emitted with the raw and the D4RL-normalized return.

Observation normalization (``normalize_obs``, TD3+BC paper sec. 5: "we normalize the features of
every state in the provided dataset", ``s = (s - mu) / (sigma + eps)``, eps = 1e-3 in the authors'
code) is done once on the host copy of the data, and the evaluation policy sees observations
normalized with the same statistics. It applies to every agent alike so comparisons stay fair.

Rewarders (``make_train(..., rewarder=r, reward_mode="replace" | "add", reward_weight=w)``): the
:class:`~purerl.core.types.Rewarder`'s state lives in the carry (``Carry.rewarder``). Each sampled
batch ``[B]`` is relabelled before the agent sees it: ``rewarder.reward(state, batch)``, then
``r = w r^rew`` ("replace") or ``r = r^env + w r^rew`` ("add"); a learned rewarder's ``update`` runs
on the same (relabelled) batch right after each ``algo.update``. The rewarder sees observations as
the agent does (normalized when ``normalize_obs``). Uniformly sampled transitions are not whole
episodes, so a rewarder whose reward depends on the episode so far (PWIL) belongs in
``purerl.datasets.relabel`` (episodes in order, once, before training) instead. ``rewarder=None``
runs exactly the loop without a rewarder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purerl.core import rewarder as rewarding
from purerl.core import validation
from purerl.core.types import Algorithm, Rewarder, Transition
from purerl.datasets import schema
from purerl.envs.protocol import Env
from purerl.loops.common import (
    Checks,
    Loop,
    Progress,
    merge_metrics,
    metrics_code,
    progress_callback,
    record_bad,
    revert_nonfinite_state,
    rewarder_key,
)
from purerl.loops.evaluate import evaluate


@dataclasses.dataclass(frozen=True)
class Config:
    total_steps: int = 1_000_000  # gradient updates (TD3+BC paper sec. 5: 1M)
    batch_size: int = 256  # TD3+BC paper, Table 3
    eval_every: int = 5_000  # updates between evaluations (TD3+BC paper: every 5k)
    eval_episodes: int = 10  # TD3+BC paper: 10 episodes per evaluation
    normalize_obs: bool = True  # TD3+BC paper sec. 5 (applied to every agent alike)
    obs_norm_eps: float = 1e-3  # TD3+BC authors' code: std + 1e-3
    progress: bool = False  # stream a progress bar and metric lines out of the compiled run
    on_nonfinite: str = "raise"  # "raise": freeze before the first update whose metrics hold
    #                              NaN/inf (agent state: checked per period, back to the period's
    #                              start) and let run_seeds raise Diverged naming seed, update and
    #                              quantity; "ignore": carry on

    def __post_init__(self):
        for name in ("total_steps", "batch_size", "eval_every", "eval_episodes"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
                raise ValueError(f"offline.Config.{name} must be a positive int, got {v!r}")
        if self.total_steps % self.eval_every:
            raise ValueError(
                f"offline.Config.total_steps ({self.total_steps}) must be a multiple of "
                f"eval_every ({self.eval_every})"
            )
        validation.non_negative("offline.Config", obs_norm_eps=self.obs_norm_eps)
        if self.on_nonfinite not in ("raise", "ignore"):
            raise ValueError(
                f"offline.Config.on_nonfinite must be 'raise' or 'ignore', got {self.on_nonfinite!r}"
            )

    @property
    def num_evals(self) -> int:
        return self.total_steps // self.eval_every


class Data(NamedTuple):
    """The dataset as the compiled loop sees it: transitions ``[N]`` (observations already
    normalized when the config asks) and the normalization statistics for evaluation."""

    transitions: Transition
    obs_mean: jax.Array
    obs_std: jax.Array


class Carry(NamedTuple):
    agent: Any
    key: jax.Array
    step: jax.Array  # updates done, int32
    bad_step: jax.Array  # first update whose metrics or new state were NaN/inf, -1 if none
    bad_what: jax.Array  # what went non-finite then (a code of Loop.checks), -1 if none
    rewarder: Any = None  # the rewarder's state (None without a rewarder)


def prepare_data(dataset, config: Config, needs_next_action: bool = False) -> Data:
    """Host :class:`purerl.datasets.Dataset` -> device :class:`Data` (normalized as configured).

    ``needs_next_action``: fill ``Transition.next_action`` (SARSA targets); the dataset must then
    hold whole, contiguous episodes."""
    from purerl.datasets.schema import Dataset, DatasetError

    if not isinstance(dataset, Dataset):
        raise TypeError(
            f"prepare_data needs a purerl.datasets.Dataset, got {type(dataset).__name__}; build "
            "one with purerl.datasets.load / validate"
        )
    if len(dataset) < config.batch_size:
        raise DatasetError(
            f"the dataset has {len(dataset)} transitions, fewer than batch_size {config.batch_size}"
        )
    _check_action_bounds(dataset)
    obs = dataset.observations.astype(np.float64)
    if config.normalize_obs:
        mean = obs.mean(axis=0)
        std = obs.std(axis=0) + config.obs_norm_eps
    else:
        mean, std = np.zeros(obs.shape[1:]), np.ones(obs.shape[1:])
    mean, std = mean.astype(np.float32), std.astype(np.float32)
    tr = dataset.transitions(next_actions=needs_next_action)
    tr = tr._replace(obs=(tr.obs - mean) / std, next_obs=(tr.next_obs - mean) / std)
    return Data(tr, jnp.asarray(mean), jnp.asarray(std))


def make_train(
    algo: Algorithm,
    env: Env,
    config: Config,
    ref_scores: tuple[float, float] | None = None,
    callback: Callable[[Any, dict], None] | None = None,
    rewarder: Rewarder | None = None,
    reward_mode: str = "replace",
    reward_weight: float = 1.0,
) -> Callable[[jax.Array, Data], tuple[Carry, dict]]:
    """``train(key, data) -> (final Carry, metrics)``, the whole run one ``lax.scan``."""
    loop = make_loop(algo, env, config, ref_scores, callback, rewarder, reward_mode, reward_weight)

    def train(key: jax.Array, data: Data) -> tuple[Carry, dict]:
        return loop.run(loop.init(key), config.num_evals, data)

    train.progress = loop.progress
    train.checks = loop.checks
    train.nonfinite_wording = {"what": "agent's losses or metrics", "unit": "update"}
    return train


def make_loop(
    algo: Algorithm,
    env: Env,
    config: Config,
    ref_scores: tuple[float, float] | None = None,
    callback: Callable[[Any, dict], None] | None = None,
    rewarder: Rewarder | None = None,
    reward_mode: str = "replace",
    reward_weight: float = 1.0,
) -> Loop:
    """Build the loop: ``init(key) -> Carry``, ``run(carry, num_periods, data)``.

    Metrics per row: ``updates``, ``eval/return``, ``eval/return_std``, ``eval/length``,
    ``eval/normalized`` (D4RL score from ``ref_scores = (random, expert)``; absent without them),
    ``check/nonfinite_step`` (``on_nonfinite="raise"``) and the period mean of every metric
    ``algo.update`` returns. With a rewarder also ``reward/env`` and ``reward/rewarder`` (period
    means of the sampled batches' env reward and of the rewarder's own unweighted reward; there
    are no episodes here, so no ``return/...``) and the period mean of the rewarder's metrics.

    Args:
      algo: the agent (any algorithm whose ``update`` takes a ``Transition`` batch ``[B]``).
      env: the evaluation env (``envs.make``), the one the data came from.
      config: loop settings.
      ref_scores: ``(random return, expert return)`` for ``eval/normalized``.
      callback: host function ``callback(updates, metrics_row)`` after each period;
        ``config.progress`` installs a progress bar.
      rewarder: a :class:`~purerl.core.types.Rewarder` applied to every sampled batch (see the
        module docstring); ``None``: the dataset's reward.
      reward_mode: ``"replace"`` (``r = w r^rew``) or ``"add"`` (``r = r^env + w r^rew``).
      reward_weight: ``w``.
    """
    spec = env.spec
    if ref_scores is not None:  # equal or non-finite references: a named error now, not -inf later
        schema.normalized_score(0.0, *ref_scores)
    if rewarder is not None:
        rewarding.check_mode(reward_mode, reward_weight, "offline.make_loop")
    callback = progress_callback(
        callback, config.progress, config.total_steps, spec.name or "offline"
    )
    raise_mode = config.on_nonfinite == "raise"
    checks = Checks()

    def update(carry: Carry, data: Data):
        key, sample_key = jax.random.split(carry.key)
        n = data.transitions.reward.shape[0]
        idx = jax.random.randint(sample_key, (config.batch_size,), 0, n)
        batch = jax.tree.map(lambda x: x[idx], data.transitions)
        if rewarder is None:
            agent, metrics = algo.update(carry.agent, batch)
            r_state = None
        else:
            r_state, batch, reward, r_metrics = rewarding.apply(
                rewarder, carry.rewarder, batch, reward_mode, reward_weight
            )
            env_reward = data.transitions.reward[idx]
            agent, metrics = algo.update(carry.agent, batch)
            r_state, u_metrics = rewarder.update(r_state, batch)
            r_metrics = merge_metrics(r_metrics, u_metrics, "offline loop")
            r_metrics = merge_metrics(
                r_metrics,
                {"reward/env": jnp.mean(env_reward), "reward/rewarder": jnp.mean(reward)},
                "offline loop",
            )
            metrics = merge_metrics(metrics, r_metrics, "offline loop")
        step = carry.step + 1
        if not raise_mode:
            return Carry(agent, key, step, carry.bad_step, carry.bad_what, r_state), metrics
        # An update whose metrics hold NaN/inf is not kept, nor any later one: the run freezes with
        # the agent (and rewarder) it had before it, and outputs zeros (one select per leaf, as
        # the cond it replaces; the states themselves are checked per period).
        code = metrics_code(checks, metrics, "data")
        bad, what = record_bad(carry.bad_step, carry.bad_what, code, step)
        frozen = bad >= 0
        keep = lambda old, x: jnp.where(frozen, old, x)  # noqa: E731
        agent = jax.tree.map(keep, carry.agent, agent)
        r_state = jax.tree.map(keep, carry.rewarder, r_state)
        metrics = jax.tree.map(lambda x: jnp.where(frozen, jnp.zeros_like(x), x), metrics)
        return Carry(agent, key, keep(carry.step, step), bad, what, r_state), metrics

    def period(carry: Carry, data: Data):
        start = carry
        carry, metrics = jax.lax.scan(lambda c, _: update(c, data), carry, None, config.eval_every)
        if raise_mode:
            # Agent and rewarder state are checked once per period (cheap); a NaN/inf there sends
            # both back to the period's start and freezes the run from the period's end on.
            agent, r_state, code = revert_nonfinite_state(
                checks, (start.agent, start.rewarder), (carry.agent, carry.rewarder), "data"
            )
            bad, what = record_bad(carry.bad_step, carry.bad_what, code, carry.step)
            carry = carry._replace(agent=agent, rewarder=r_state, bad_step=bad, bad_what=what)
        key, eval_key = jax.random.split(carry.key)

        def policy(obs, k):
            return algo.act(carry.agent, (obs - data.obs_mean) / data.obs_std, k, True)[0]

        returns, lengths = evaluate(env, policy, eval_key, config.eval_episodes)
        row = {k: jnp.mean(v) for k, v in metrics.items()}
        row.update(
            {
                "updates": carry.step,
                "eval/return": jnp.mean(returns),
                "eval/return_std": jnp.std(returns),
                "eval/length": jnp.mean(lengths),
            }
        )
        if ref_scores is not None:
            row["eval/normalized"] = schema.normalized_score(row["eval/return"], *ref_scores)
        if raise_mode:
            row["check/nonfinite_step"] = carry.bad_step
            row["check/nonfinite_what"] = carry.bad_what
        if callback is not None:
            jax.debug.callback(callback, carry.step, row)
        return carry._replace(key=key), row

    def init(key: jax.Array) -> Carry:
        root = key
        agent_key, key = jax.random.split(key)
        r_state = None
        if rewarder is not None:
            r_state = rewarding.init(
                rewarder, rewarder_key(root), spec, config.batch_size, "offline loop"
            )
        return Carry(
            agent=algo.init(agent_key, spec),
            key=key,
            step=jnp.zeros((), jnp.int32),
            bad_step=jnp.full((), -1, jnp.int32),
            bad_what=jnp.full((), -1, jnp.int32),
            rewarder=r_state,
        )

    def run(carry: Carry, num_periods: int, data: Data) -> tuple[Carry, dict]:
        check_data(data, spec)
        return jax.lax.scan(lambda c, _: period(c, data), carry, None, num_periods)

    progress = callback if isinstance(callback, Progress) else None
    return Loop(init=init, run=run, progress=progress, checks=checks)


ACTION_BOUND_SLACK = 1e-3  # float noise in files whose actions were clipped to [-1, 1]


def _check_action_bounds(dataset) -> None:
    """Continuous actions must lie in the agents' box ``[-1, 1]`` (``core.types.EnvSpec``; the env
    wrappers rescale them to the physics' bounds). Data recorded in the physics' own units (e.g.
    brax inverted_pendulum's [-3, 3]) would otherwise train policies toward targets their ``tanh``
    cannot reach, without a word."""
    from purerl.datasets.schema import DatasetError

    actions = dataset.actions
    if not np.issubdtype(actions.dtype, np.floating) or actions.size == 0:
        return  # discrete action indices
    magnitude = np.abs(actions)
    flat = int(np.argmax(magnitude))
    worst = float(magnitude.reshape(-1)[flat])
    if worst > 1.0 + ACTION_BOUND_SLACK:
        index = np.unravel_index(flat, actions.shape)
        raise DatasetError(
            f"dataset actions must lie in [-1, 1] (the agents' action box; the env wrappers rescale "
            f"to the physics' bounds), but actions{list(map(int, index))} = "
            f"{float(actions[index]):.6g}; rescale the data first, e.g. "
            "2 * (a - low) / (high - low) - 1 with the env's bounds"
        )


def check_data(data: Data, spec) -> None:
    """The data must match the env: obs and action shapes (clear error instead of a shape crash)."""
    if not isinstance(data, Data):
        raise TypeError(
            f"the offline loop needs offline.Data (from offline.prepare_data), got "
            f"{type(data).__name__}"
        )
    tr = data.transitions
    n = tr.reward.shape[0]
    validation.check_batch(
        jax.tree.map(lambda x: x[:1], tr) if n else tr, spec, "offline dataset vs env"
    )
