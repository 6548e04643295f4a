"""On-policy loop: rollouts -> one ``algo.update`` per rollout, the whole run one ``lax.scan``.

    train = on_policy.make_train(algo, env, on_policy.Config(total_steps=1_048_576))
    state, metrics = jax.jit(jax.vmap(train))(jax.random.split(key, 8))     # 8 seeds, one compile

Per iteration: ``num_envs`` envs each take ``unroll_length`` steps with ``algo.act`` (vmapped
``env.step``, auto-reset inside the env), giving a rollout ``Transition`` with leaves
``[unroll_length, num_envs, ...]`` (``next_obs`` is the final observation at episode ends); then
``algo.update`` runs once on that rollout (PPO does its epochs and minibatches inside). Every
``eval_every`` env steps a deterministic evaluation runs and one row of metrics is emitted (that row
is also streamed to the progress callback). The structure mirrors :mod:`purerl.loops.online`.

Rewarders (``make_train(..., rewarder=r, reward_mode="replace" | "add", reward_weight=w)``): the
:class:`~purerl.core.types.Rewarder`'s state lives in the carry (``Carry.rewarder``). ``reward`` is
called on every env step of the rollout, in order, on the ``[num_envs]`` transitions of that step
(so a stateful rewarder follows each env's episodes across rollouts and reads episode ends from
``terminated`` / ``truncated``); the rollout holds the combined reward ``r = w r^rew`` ("replace")
or ``r = r^env + w r^rew`` ("add"). A learned rewarder's ``update`` runs once per ``algo.update``,
right after it, on the same ``[T, E]`` rollout (the latest policy's data, as GAIL's discriminator
step in Ho & Ermon 2016, Algorithm 1). ``rewarder=None`` runs exactly the loop without a rewarder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purerl.core import rewarder as rewarding
from purerl.core.types import Algorithm, Rewarder, Transition
from purerl.envs.protocol import Env, EnvState
from purerl.loops.common import (
    Checks,
    Loop,
    Progress,
    RewarderCarry,
    env_step_stats,
    freeze_on_nonfinite,
    init_rewarder,
    make_train_fn,
    merge_metrics,
    metrics_code,
    period_row,
    progress_callback,
    record_bad,
    revert_nonfinite_state,
    rewarder_key,
)


@dataclasses.dataclass(frozen=True)
class Config:
    total_steps: int = 1_048_576  # env steps over all envs: 2^20, the PPO paper's 1M MuJoCo steps
    #                               (sec. 6.1) rounded to a whole number of 2048-step rollouts
    num_envs: int = 1  # parallel envs per seed (PPO paper, MuJoCo: one actor)
    unroll_length: int = 2048  # T, steps per env per rollout (PPO paper Table 3: horizon 2048)
    eval_every: int = 16_384  # env steps between evaluations (= one metrics row); 8 rollouts
    eval_episodes: int = 10  # episodes per evaluation (the D4RL / TD3 papers: 10)
    progress: bool = False  # stream a progress bar and metric lines out of the compiled run
    on_nonfinite: str = "raise"  # "raise": freeze the run at the first NaN/inf obs/reward (the
    #                              rollout holding it is never learned from), update metric or agent
    #                              state (that update is undone) and let run_seeds raise Diverged
    #                              naming seed, step and quantity; "ignore": carry on

    def __post_init__(self):
        for name in ("total_steps", "num_envs", "unroll_length", "eval_every", "eval_episodes"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
                raise ValueError(f"on_policy.Config.{name} must be a positive int, got {v!r}")
        if self.total_steps % self.eval_every:
            raise ValueError(
                f"on_policy.Config.total_steps ({self.total_steps}) must be a multiple of "
                f"eval_every ({self.eval_every})"
            )
        if self.eval_every % self.steps_per_iteration:
            raise ValueError(
                f"on_policy.Config.eval_every ({self.eval_every}) must be a multiple of "
                f"num_envs * unroll_length ({self.num_envs} * {self.unroll_length} = "
                f"{self.steps_per_iteration})"
            )
        if self.on_nonfinite not in ("raise", "ignore"):
            raise ValueError(
                f"on_policy.Config.on_nonfinite must be 'raise' or 'ignore', "
                f"got {self.on_nonfinite!r}"
            )

    @property
    def steps_per_iteration(self) -> int:
        return self.num_envs * self.unroll_length

    @property
    def iterations_per_eval(self) -> int:
        return self.eval_every // self.steps_per_iteration

    @property
    def num_evals(self) -> int:
        return self.total_steps // self.eval_every


class Carry(NamedTuple):
    agent: Any
    env: EnvState
    key: jax.Array
    iteration: jax.Array  # rollouts done, int32
    bad_step: jax.Array  # first env step with non-finite obs/reward/update, -1 if none
    bad_what: jax.Array  # what went non-finite then (a code of Loop.checks), -1 if none
    rewarder: RewarderCarry | None = None  # the rewarder's state (None without a rewarder)


def make_train(
    algo: Algorithm,
    env: Env,
    config: Config,
    eval_env: Env | None = None,
    callback: Callable[[Any, dict], None] | None = None,
    rewarder: Rewarder | None = None,
    reward_mode: str = "replace",
    reward_weight: float = 1.0,
) -> Callable[[jax.Array], tuple[Carry, dict]]:
    """``train(key) -> (final Carry, metrics)``, the whole run one ``lax.scan``; see :func:`make_loop`."""
    loop = make_loop(algo, env, config, eval_env, callback, rewarder, reward_mode, reward_weight)
    return make_train_fn(loop, config.num_evals)


def make_loop(
    algo: Algorithm,
    env: Env,
    config: Config,
    eval_env: Env | None = None,
    callback: Callable[[Any, dict], None] | None = None,
    rewarder: Rewarder | None = None,
    reward_mode: str = "replace",
    reward_weight: float = 1.0,
) -> Loop:
    """Build the loop; ``run`` returns metrics whose leaves are ``[num_periods]``.

    Metrics per row: ``env_steps``, ``eval/return``, ``eval/return_std``, ``eval/length``,
    ``train/episode_return`` (mean env return over episodes finished in the period; NaN if none
    finished), ``train/episodes``, ``check/nonfinite_step`` and the period mean of every metric
    ``algo.update`` returns (NaN if no update ran in the period, e.g. frozen on a NaN). With a
    rewarder also ``return/env`` (= ``train/episode_return``), ``return/rewarder`` (the rewarder's
    own unweighted return over the same episodes), the period mean of ``rewarder.reward``'s
    metrics and of ``rewarder.update``'s (names must differ from the agent's).

    Args:
      algo: the agent (``LOOP == "on_policy"``, e.g. PPO).
      env: the training env (``envs.make``).
      config: loop settings.
      eval_env: env for evaluation (default ``env``).
      callback: host function ``callback(env_steps, metrics_row)`` called through
        ``jax.debug.callback`` after each period; ``config.progress`` installs a progress bar.
      rewarder: a :class:`~purerl.core.types.Rewarder` applied to every collected env step (see the
        module docstring); ``None``: the env's reward.
      reward_mode: ``"replace"`` (``r = w r^rew``) or ``"add"`` (``r = r^env + w r^rew``).
      reward_weight: ``w``.
    """
    spec = env.spec
    eval_env = eval_env or env
    n_envs = config.num_envs
    if rewarder is not None:
        rewarding.check_mode(reward_mode, reward_weight, "on_policy.make_loop")
    callback = progress_callback(
        callback, config.progress, config.total_steps, spec.name or "train"
    )
    checks = Checks()

    def env_step(carry: Carry, t: jax.Array) -> tuple[Carry, tuple[Transition, dict]]:
        key, act_key, env_key = jax.random.split(carry.key, 3)
        action = algo.act(carry.agent, carry.env.obs, act_key)[0]
        state = jax.vmap(env.step)(jax.random.split(env_key, n_envs), carry.env, action)
        transition = Transition(
            obs=carry.env.obs,
            action=action,
            reward=state.reward,
            next_obs=state.final_obs,
            terminated=state.terminated,
            truncated=state.truncated,
        )
        r_carry, transition, stats, code = env_step_stats(
            state, transition, rewarder, carry.rewarder, reward_mode, reward_weight, checks
        )
        carry = carry._replace(rewarder=r_carry)
        env_steps = carry.iteration * config.steps_per_iteration + (t + 1) * n_envs
        bad_step, bad_what = record_bad(carry.bad_step, carry.bad_what, code, env_steps)
        carry = carry._replace(env=state, key=key, bad_step=bad_step, bad_what=bad_what)
        return carry, (transition, stats)

    def rollout(carry: Carry) -> tuple[Carry, Transition, dict]:
        carry, (batch, stats) = jax.lax.scan(
            env_step, carry, jnp.arange(config.unroll_length, dtype=jnp.int32)
        )
        reward_metrics = stats.pop("reward_metrics", None)
        stats = jax.tree.map(jnp.sum, stats)
        if reward_metrics is not None:  # a mean over the rollout's steps, not a sum
            stats["reward_metrics"] = jax.tree.map(jnp.mean, reward_metrics)
        return carry, batch, stats

    def learn(carry: Carry, batch: Transition) -> tuple[Carry, dict]:
        agent, metrics = algo.update(carry.agent, batch)
        if rewarder is None:
            return carry._replace(agent=agent), metrics
        r_state, r_metrics = rewarder.update(carry.rewarder.state, batch)
        metrics = merge_metrics(metrics, r_metrics, "on-policy loop")
        return carry._replace(agent=agent, rewarder=carry.rewarder._replace(state=r_state)), metrics

    def iteration(carry: Carry, _):
        def live(carry):
            carry, batch, stats = rollout(carry)
            if config.on_nonfinite == "raise":
                # Never learn from a rollout holding a NaN/inf: keep the agent as it was.
                def skip(c, b):
                    shapes = jax.eval_shape(learn, c, b)[1]
                    return c, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

                learning = carry.bad_step < 0
                before = carry
                carry, metrics = jax.lax.cond(learning, learn, skip, carry, batch)
                # An update whose metrics are NaN/inf is undone: the run freezes with the agent
                # (and rewarder) it had before that update. The states are checked per period.
                code = metrics_code(checks, metrics, "agent")
                env_steps = (carry.iteration + 1) * config.steps_per_iteration
                bad_step, bad_what = record_bad(carry.bad_step, carry.bad_what, code, env_steps)
                diverged = learning & (bad_step >= 0)
                keep = lambda old, x: jnp.where(diverged, old, x)  # noqa: E731
                carry = carry._replace(
                    agent=jax.tree.map(keep, before.agent, carry.agent),
                    rewarder=jax.tree.map(keep, before.rewarder, carry.rewarder),
                    bad_step=bad_step,
                    bad_what=bad_what,
                )
                metrics = jax.tree.map(lambda x: jnp.where(diverged, jnp.zeros_like(x), x), metrics)
                learning = learning & ~diverged
            else:
                learning = jnp.ones((), bool)
                carry, metrics = learn(carry, batch)
            metrics = {**metrics, "learning": learning.astype(jnp.float32)}
            return carry._replace(iteration=carry.iteration + 1), (stats, metrics)

        return freeze_on_nonfinite(live, carry, config.on_nonfinite == "raise")

    def period(carry: Carry, _):
        start = carry
        carry, (stats, metrics) = jax.lax.scan(iteration, carry, None, config.iterations_per_eval)
        if config.on_nonfinite == "raise":
            # Agent and rewarder state are checked once per period (cheap); a NaN/inf there sends
            # both back to the period's start and freezes the run from the period's end on.
            r_start = None if rewarder is None else start.rewarder.state
            r_end = None if rewarder is None else carry.rewarder.state
            agent, r_state, code = revert_nonfinite_state(
                checks, (start.agent, r_start), (carry.agent, r_end), "agent"
            )
            bad_step, bad_what = record_bad(
                carry.bad_step, carry.bad_what, code, carry.iteration * config.steps_per_iteration
            )
            r_carry = None if rewarder is None else carry.rewarder._replace(state=r_state)
            carry = carry._replace(
                agent=agent, rewarder=r_carry, bad_step=bad_step, bad_what=bad_what
            )
        key, eval_key = jax.random.split(carry.key)
        row = period_row(
            algo,
            eval_env,
            carry.agent,
            eval_key,
            config.eval_episodes,
            stats,
            metrics,
            carry.iteration * config.steps_per_iteration,
            carry.bad_step if config.on_nonfinite == "raise" else None,
            callback,
            carry.bad_what if config.on_nonfinite == "raise" else None,
        )
        return carry._replace(key=key), row

    def init(key: jax.Array) -> Carry:
        root = key
        agent_key, env_key, key = jax.random.split(key, 3)
        r_carry = None
        if rewarder is not None:
            r_carry = init_rewarder(rewarder, rewarder_key(root), spec, n_envs, "on-policy loop")
        return Carry(
            agent=algo.init(agent_key, spec),
            env=jax.vmap(env.reset)(jax.random.split(env_key, n_envs)),
            key=key,
            iteration=jnp.zeros((), jnp.int32),
            bad_step=jnp.full((), -1, jnp.int32),
            bad_what=jnp.full((), -1, jnp.int32),
            rewarder=r_carry,
        )

    def run(carry: Carry, num_periods: int) -> tuple[Carry, dict]:
        return jax.lax.scan(period, carry, None, num_periods)

    progress = callback if isinstance(callback, Progress) else None
    return Loop(init=init, run=run, progress=progress, checks=checks)
