"""Online off-policy loop: env steps -> replay -> gradient updates, the whole run one ``lax.scan``.

    train = online.make_train(algo, env, online.Config(total_steps=50_000))
    state, metrics = jax.jit(jax.vmap(train))(jax.random.split(key, 8))     # 8 seeds, one compile

Per iteration: every one of ``num_envs`` envs takes a step (uniform random actions during warm-up,
``algo.act`` after), the transitions (with ``next_obs`` = the final observation at episode ends) go
into the replay, and once warm-up is over ``updates_per_iteration = utd * num_envs`` calls of
``algo.update`` run on sampled batches. Every ``eval_every`` env steps a deterministic evaluation runs
and one row of metrics is emitted (that row is also streamed to the progress callback).

Rewarders (``make_train(..., rewarder=r, reward_mode="replace" | "add", reward_weight=w)``): the
:class:`~purerl.core.types.Rewarder`'s state lives in the carry (``Carry.rewarder``, so checkpoints
keep it). ``rewarder.reward`` is called once per iteration on the ``[num_envs]`` transitions just
collected (warm-up included), in order, so a stateful rewarder sees each env's episodes step by
step and reads episode ends from ``terminated`` / ``truncated``; the replay stores the combined
reward ``r = w r^rew`` ("replace") or ``r = r^env + w r^rew`` ("add"). A learned rewarder's
``update`` runs on the agent's sampled batch right after each ``algo.update`` (same batch, same
count: ``updates_per_iteration`` per iteration once warm-up is over), so its training data is the
replay's state-action distribution, as GAIL/DAC's discriminator step wants. ``rewarder=None`` runs
exactly the loop without a rewarder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purerl.core import replay, validation
from purerl.core import rewarder as rewarding
from purerl.core.types import Algorithm, Rewarder, Transition
from purerl.envs.protocol import Env, EnvState
from purerl.loops.common import (
    Checks,
    Loop,
    Progress,
    RewarderCarry,
    env_step_stats,
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
    total_steps: int = 100_000  # env steps, summed over the parallel envs
    num_envs: int = 1  # parallel envs per seed (1 = the papers' sequential setting)
    warmup_steps: int = 10_000  # uniform random-action steps before learning (TD3 repo: 25k)
    utd: float = 1.0  # gradient updates per env step (update-to-data ratio)
    batch_size: int = 256  # TD3/SAC papers
    buffer_size: int = 1_000_000  # transitions kept (all envs together); TD3/SAC papers: 1e6
    n_step: int = 1  # window length of sampled batches; must equal the agent's n_step
    eval_every: int = 5_000  # env steps between evaluations (= one metrics row)
    eval_episodes: int = 10  # episodes per evaluation (the D4RL / TD3 papers: 10)
    progress: bool = False  # stream a progress bar and metric lines out of the compiled run
    on_nonfinite: str = "raise"  # "raise": freeze the run at the first NaN/inf obs, reward, update
    #                              metric or agent state and let run_seeds raise Diverged naming
    #                              seed, step and quantity; "ignore": carry on

    def __post_init__(self):
        for name in (
            "total_steps",
            "num_envs",
            "batch_size",
            "buffer_size",
            "n_step",
            "eval_every",
            "eval_episodes",
        ):
            v = getattr(self, name)
            if not (isinstance(v, int) and v > 0):
                raise ValueError(f"online.Config.{name} must be a positive int, got {v!r}")
        validation.non_negative("online.Config", warmup_steps=self.warmup_steps)
        validation.positive("online.Config", utd=self.utd)
        if self.total_steps % self.eval_every:
            raise ValueError(
                f"online.Config.total_steps ({self.total_steps}) must be a multiple of eval_every "
                f"({self.eval_every})"
            )
        if self.eval_every % self.num_envs:
            raise ValueError(
                f"online.Config.eval_every ({self.eval_every}) must be a multiple of num_envs "
                f"({self.num_envs})"
            )
        upi = self.utd * self.num_envs
        if abs(upi - round(upi)) > 1e-9 or round(upi) < 1:
            raise ValueError(
                f"online.Config.utd * num_envs must be a positive integer (updates per iteration), "
                f"got {self.utd} * {self.num_envs} = {upi}"
            )
        if self.batch_size > self.buffer_size:
            raise ValueError(
                f"online.Config.batch_size ({self.batch_size}) is larger than buffer_size "
                f"({self.buffer_size})"
            )
        if self.buffer_size < self.num_envs * self.n_step:
            raise ValueError(
                "online.Config.buffer_size must hold at least n_step steps of each env"
            )
        if self.on_nonfinite not in ("raise", "ignore"):
            raise ValueError(
                f"online.Config.on_nonfinite must be 'raise' or 'ignore', got {self.on_nonfinite!r}"
            )

    @property
    def updates_per_iteration(self) -> int:
        return int(round(self.utd * self.num_envs))

    @property
    def iterations_per_eval(self) -> int:
        return self.eval_every // self.num_envs

    @property
    def num_evals(self) -> int:
        return self.total_steps // self.eval_every

    @property
    def warmup_iterations(self) -> int:
        # learning starts once the buffer holds at least one batch and one n-step window.
        return max(-(-self.warmup_steps // self.num_envs), self.n_step)


class Carry(NamedTuple):
    agent: Any
    env: EnvState
    buffer: replay.ReplayState
    key: jax.Array
    iteration: jax.Array  # int32
    bad_step: jax.Array  # first env step with non-finite obs/reward/update, -1 if none
    bad_what: jax.Array  # what went non-finite then (a code of Loop.checks), -1 if none
    rewarder: RewarderCarry | None = None  # the rewarder's state (None without a rewarder)


def random_actions(spec, key: jax.Array, n: int) -> jax.Array:
    """Uniform random actions for ``n`` envs (warm-up)."""
    if spec.discrete:
        return jax.random.randint(key, (n,), 0, spec.num_actions)
    return jax.random.uniform(key, (n, *spec.action_shape), minval=-1.0, maxval=1.0)


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

    Metrics per row: ``env_steps``, ``eval/return``, ``eval/length``, ``train/episode_return``
    (mean env return over episodes finished in the period; NaN if none finished),
    ``train/episodes``, ``check/nonfinite_step`` and the period mean of every metric ``algo.update``
    returns. With a rewarder also ``return/env`` (= ``train/episode_return``: the env's reward is
    logged, whatever the agent learns from), ``return/rewarder`` (the rewarder's own unweighted
    return over the same episodes), the period mean of ``rewarder.reward``'s metrics and of
    ``rewarder.update``'s (names must differ from the agent's).

    Args:
      algo: the agent.
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
        rewarding.check_mode(reward_mode, reward_weight, "online.make_loop")
    capacity = max(config.buffer_size // n_envs, config.n_step)
    callback = progress_callback(
        callback, config.progress, config.total_steps, spec.name or "train"
    )
    window = None if config.n_step == 1 else config.n_step
    checks = Checks()

    def sample_batch(buffer, key):
        batch = replay.sample(buffer, key, config.batch_size, config.n_step)
        if window is not None:
            validation.check_batch(batch, spec, "online loop", window=window)
        return batch

    def env_step(carry: Carry, check: bool) -> tuple[Carry, dict]:
        key, act_key, env_key = jax.random.split(carry.key, 3)
        learning = carry.iteration >= config.warmup_iterations
        action = jax.lax.cond(
            learning,
            lambda: algo.act(carry.agent, carry.env.obs, act_key)[0],
            lambda: random_actions(spec, act_key, n_envs).astype(
                jnp.int32 if spec.discrete else jnp.float32
            ),
        )
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
        env_steps = (carry.iteration + 1) * n_envs
        bad_step, bad_what = record_bad(carry.bad_step, carry.bad_what, code, env_steps)
        # A frozen run (this step or an earlier one non-finite) writes nothing: a masked write of
        # one slot, never a select over the whole buffer (which under vmap copied all of it every
        # iteration: 3x slower at 1M slots).
        buffer = replay.add(carry.buffer, transition, bad_step < 0 if check else None)
        carry = carry._replace(env=state, buffer=buffer, key=key)
        return carry._replace(bad_step=bad_step, bad_what=bad_what), stats

    def updates(agent, r_state, buffer, key) -> tuple[Any, Any, dict]:
        """``updates_per_iteration`` updates on batches sampled from ``buffer``. The buffer is an
        argument, never a result, so the ``lax.cond`` around this never copies it."""
        keys = jax.random.split(key, config.updates_per_iteration)

        if rewarder is None:

            def one(agent, k):
                return algo.update(agent, sample_batch(buffer, k))

            agent, metrics = jax.lax.scan(one, agent, keys)
            return agent, r_state, jax.tree.map(jnp.mean, metrics)

        def one_with_rewarder(states, k):
            agent, r_state = states
            batch = sample_batch(buffer, k)
            agent, metrics = algo.update(agent, batch)
            r_state, r_metrics = rewarder.update(r_state, batch)
            return (agent, r_state), merge_metrics(metrics, r_metrics, "online loop")

        (agent, r_state), metrics = jax.lax.scan(one_with_rewarder, (agent, r_state), keys)
        return agent, r_state, jax.tree.map(jnp.mean, metrics)

    def iteration(carry: Carry, _):
        """One env step of every env, then (after warm-up) the updates.

        With ``on_nonfinite="raise"`` a run is frozen from the env step whose observation or
        reward is non-finite on: its agent, env, rewarder state and buffer stay as they were
        before that step (no update ever sees the NaN) and it outputs zeros. Likewise from the
        iteration whose updates give a non-finite metric (a loss) or agent/rewarder state (the
        parameters): agent, env and rewarder state stay as they were before that iteration (the
        replay buffer keeps the iteration's own, finite, transitions); the states themselves are
        checked at the period's end (:func:`period`). The freeze is applied
        leaf by leaf to the small parts of the carry (and as a masked write to the buffer) rather
        than as one ``lax.cond`` over the carry: under ``vmap`` a cond on a per-seed predicate
        becomes a select of both branches, i.e. a copy of the whole replay buffer per iteration.
        The iteration counter always advances, so it stays the same for every seed (unbatched) and
        the warm-up ``cond`` below stays a real branch.
        """
        check = config.on_nonfinite == "raise"
        stepped, stats = env_step(carry, check)
        learning = carry.iteration >= config.warmup_iterations
        r_state = None if stepped.rewarder is None else stepped.rewarder.state

        def learn(agent, r_state, key):
            key, update_key = jax.random.split(key)
            return key, *updates(agent, r_state, stepped.buffer, update_key)

        def wait(agent, r_state, key):
            metrics = jax.eval_shape(learn, agent, r_state, key)[3]
            return key, agent, r_state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), metrics)

        key, agent, r_state, metrics = jax.lax.cond(
            learning, learn, wait, stepped.agent, r_state, stepped.key
        )
        code = metrics_code(checks, metrics, "agent") if check else None
        metrics = {**metrics, "learning": learning.astype(jnp.float32)}
        r_carry = None if stepped.rewarder is None else stepped.rewarder._replace(state=r_state)
        new = stepped._replace(agent=agent, rewarder=r_carry, key=key)
        outputs = (stats, metrics)
        if check:
            env_steps = (carry.iteration + 1) * n_envs
            bad_step, bad_what = record_bad(new.bad_step, new.bad_what, code, env_steps)
            new = new._replace(bad_step=bad_step, bad_what=bad_what)
            frozen = bad_step >= 0
            keep = lambda old, x: jnp.where(frozen, old, x)  # noqa: E731
            new = new._replace(
                agent=jax.tree.map(keep, carry.agent, new.agent),
                env=jax.tree.map(keep, carry.env, new.env),
                rewarder=jax.tree.map(keep, carry.rewarder, new.rewarder),
            )
            outputs = jax.tree.map(lambda x: jnp.where(frozen, jnp.zeros_like(x), x), outputs)
        return new._replace(iteration=carry.iteration + 1), outputs

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
                carry.bad_step, carry.bad_what, code, carry.iteration * n_envs
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
            carry.iteration * n_envs,
            carry.bad_step if config.on_nonfinite == "raise" else None,
            callback,
            carry.bad_what if config.on_nonfinite == "raise" else None,
        )
        return carry._replace(key=key), row

    def init(key: jax.Array) -> Carry:
        root = key
        agent_key, env_key, key = jax.random.split(key, 3)
        agent = algo.init(agent_key, spec)
        env_state = jax.vmap(env.reset)(jax.random.split(env_key, n_envs))
        example = Transition(
            obs=env_state.obs[0],
            action=random_actions(spec, key, 1)[0].astype(
                jnp.int32 if spec.discrete else jnp.float32
            ),
            reward=env_state.reward[0],
            next_obs=env_state.obs[0],
            terminated=env_state.terminated[0],
            truncated=env_state.truncated[0],
        )
        r_carry = None
        if rewarder is not None:
            r_carry = init_rewarder(rewarder, rewarder_key(root), spec, n_envs, "online loop")
        return Carry(
            agent=agent,
            env=env_state,
            buffer=replay.init(example, capacity, n_envs),
            key=key,
            iteration=jnp.zeros((), jnp.int32),
            bad_step=jnp.full((), -1, jnp.int32),
            bad_what=jnp.full((), -1, jnp.int32),
            rewarder=r_carry,
        )

    def run(carry: Carry, num_periods: int) -> tuple[Carry, dict]:
        return jax.lax.scan(period, carry, None, num_periods)

    return Loop(
        init=init,
        run=run,
        progress=callback if isinstance(callback, Progress) else None,
        shared=("iteration",),  # advances identically in every seed (see iteration())
        checks=checks,
    )
