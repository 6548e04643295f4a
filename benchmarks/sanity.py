"""Sanity suite: every agent at its DEFAULT config on easy tasks with known answers (issue 13, item 2).

    python -m benchmarks.sanity                         # every task, 5 seeds each (tens of minutes)
    python -m benchmarks.sanity --only dqn-cartpole,sac-pendulum
    python -m benchmarks.sanity --quick                 # tiny step counts: checks the script runs
    python -m benchmarks.sanity --summary               # rebuild the table from the records

Each task is one agent built from ``agent.Config()`` as it is when the script runs (nothing here
sets an agent hyperparameter; the one exception is the task that is defined by a switch,
``dqn(munchausen=True)``), one env, and the loop settings that task needs (steps, eval period,
parallel envs: set per task below, each with a comment). The online and on-policy loop configs are
built by ``purerl.cli.loop_config``, so a task runs what ``purerl train AGENT --env ENV --steps S``
with the same flags runs (the ``command`` column), e.g. warm-up and replay size scaled to the
steps and the loop's ``n_step`` following the agent's. All seeds of a task are vmapped in one
compiled program (``loops.common.run_seeds``); the wall time includes compilation (JAX's persistent
compilation cache is not turned on here, so every run compiles from scratch).

A task passes when every seed's final evaluation (deterministic policy, ``eval_episodes`` episodes,
the loop's default) is at or above the task's threshold. The table also gives each seed's final
return, the first evaluation at which each seed reached the threshold (env steps; updates for the
offline task), and the mean with a 95% percentile-bootstrap interval over seeds, clipped to the
returns the task can produce. Thresholds and their sources are in :data:`TASKS`.

Records: ``results/sanity/<task>.json`` + ``<task>.csv`` + ``<task>.png`` (every seed's eval curve,
the mean and the threshold); the table is ``results/sanity.md``. ``--quick`` writes to
``results/sanity_quick/`` and ``results/sanity_quick.md`` instead, marked as quick, so it never
touches the real table.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import shlex
import time
from typing import Any

import numpy as np

from benchmarks._common import RESULTS, provenance

# Sources of the thresholds.
SRC_IP = (
    "issue 13: balance brax inverted_pendulum (1 per step, 1000 steps, max 1000); brax's own SAC "
    "trainer balances it (1000) from ~11k steps on the generalized backend"
)
SRC_PENDULUM = (
    "RL Baselines3 Zoo benchmark.md: SAC Pendulum -202 ± 61 after 20k steps; CleanRL's SAC / TD3 "
    "Pendulum-v1 curves reach about -150 to -200 by 20k steps (as cited in issue 13)"
)
SRC_CARTPOLE = (
    "Gym CartPole-v1's reward_threshold 475 (return capped at 500); common DQN implementations "
    "reach the cap within 100k steps (issue 13)"
)
SRC_PPO = (
    "issue 13: PPO solves inverted_pendulum within 300k steps (brax's PPO: 1000 at 143k steps)"
)
SRC_BC = "issue 13: BC reaches the expert on expert data; 90% of the dataset's mean episode return"

PENDULUM_RANGE = (-200 * 16.2736044, 0.0)  # 200 steps x worst step cost (purerl.envs.classic)


@dataclasses.dataclass(frozen=True)
class Task:
    agent: str  # module name in purerl.agents
    env: str  # env name (online / on-policy) or dataset name (offline)
    steps: int  # env steps (online, on-policy) or gradient updates (offline)
    threshold: float | None  # None: a fraction of the dataset's expert return (offline)
    source: str
    bounds: tuple[float | None, float | None]  # returns the task can produce (clips the CI)
    eval_every: int | None = None  # None: the CLI's choice for `steps`
    num_envs: int | None = None  # None: the loop's default
    loop_set: tuple[str, ...] = ()  # further loop settings, as `purerl train --loop-set`
    agent_switch: tuple[tuple[str, Any], ...] = ()  # only a switch that defines the task
    expert_fraction: float | None = None  # offline: threshold = fraction x expert return


TASKS: dict[str, Task] = {
    # Off-policy continuous control. One env, as the papers (num_envs 1: loop default); eval every
    # 1000 steps so the step that first reaches the threshold is known to within 1000 steps.
    **{
        f"{agent}-inverted_pendulum": Task(
            agent, "inverted_pendulum", 20_000, 950.0, SRC_IP, (0.0, 1000.0), eval_every=1000
        )
        for agent in ("sac", "td3", "d4pg")
    },
    **{
        f"{agent}-pendulum": Task(
            agent, "pendulum", 20_000, -200.0, SRC_PENDULUM, PENDULUM_RANGE, eval_every=1000
        )
        for agent in ("sac", "td3", "d4pg")
    },
    # DQN: one env; eval every 5000 steps (the loop's default period), 20 evaluations.
    "dqn-cartpole": Task("dqn", "cartpole", 100_000, 475.0, SRC_CARTPOLE, (0.0, 500.0)),
    "mdqn-cartpole": Task(
        "dqn",
        "cartpole",
        100_000,
        475.0,
        SRC_CARTPOLE,
        (0.0, 500.0),
        agent_switch=(("munchausen", True),),
    ),
    # PPO: the README quickstart's rollout shape (32 envs x 64 steps = 2048 steps per update, the
    # paper's horizon); 294,912 = 144 rollouts is the largest multiple of 2048 and of the eval period
    # (16,384, the loop's default) within 300k steps.
    "ppo-inverted_pendulum": Task(
        "ppo",
        "inverted_pendulum",
        294_912,
        950.0,
        SRC_PPO,
        (0.0, 1000.0),
        eval_every=16_384,
        num_envs=32,
        loop_set=("unroll_length=64",),
    ),
    # BC on the expert data of inverted_double_pendulum (purerl's PPO expert, 200k transitions,
    # cached once generated); 5000 updates (batch 256: ~6 passes over the data), eval every 250.
    # The bar is not met by doing nothing: zero actions score ~620 and uniform random ones ~300
    # (the dataset's ref_min_score) on the spring backend.
    "bc-inverted_double_pendulum-expert": Task(
        "bc",
        "inverted_double_pendulum-expert",
        5_000,
        None,
        SRC_BC,
        (None, 10_000.0),  # brax reward <= alive bonus 10 per step, 1000 steps
        eval_every=250,
        expert_fraction=0.9,
    ),
}


def _namespace(task: Task, steps: int, eval_every: int | None) -> argparse.Namespace:
    return argparse.Namespace(
        steps=steps,
        no_progress=True,
        num_envs=task.num_envs,
        eval_every=eval_every,
        loop_set=list(task.loop_set),
    )


def command(task: Task, steps: int, eval_every: int | None, seeds: int) -> str:
    """The `purerl train` / `train-offline` command that runs the same configuration."""
    sub = "train-offline" if task.expert_fraction is not None else "train"
    where = ["--dataset", task.env] if sub == "train-offline" else ["--env", task.env]
    argv = ["purerl", sub, task.agent, *where, "--steps", str(steps), "--seeds", str(seeds)]
    if eval_every is not None:
        argv += ["--eval-every", str(eval_every)]
    if task.num_envs is not None:
        argv += ["--num-envs", str(task.num_envs)]
    for item in task.loop_set:
        argv += ["--loop-set", item]
    for k, v in task.agent_switch:
        argv += ["--set", f"{k}={str(v).lower()}"]
    return " ".join(shlex.quote(a) for a in argv)


def bootstrap_ci(
    values: np.ndarray,
    bounds: tuple[float | None, float | None],
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap interval of the mean over seeds, clipped to ``bounds``.

    ``resamples`` means of ``n`` values drawn with replacement; the interval is their
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles (Efron & Tibshirani 1993,
    ch. 13). With 5 seeds it is narrow (it cannot reach beyond the observed values): read it with
    the per-seed returns beside it.
    """
    x = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, (resamples, x.size))].mean(1)
    lo, hi = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    low, high = bounds
    clip = lambda v: float(
        np.clip(v, -np.inf if low is None else low, np.inf if high is None else high)
    )
    return float(x.mean()), clip(lo), clip(hi)


def first_reached(curve: np.ndarray, steps: np.ndarray, threshold: float) -> int | None:
    """The step of the first evaluation at or above ``threshold`` (None if none)."""
    hit = np.nonzero(curve >= threshold)[0]
    return int(steps[hit[0]]) if hit.size else None


def plot(
    path: str, name: str, steps: np.ndarray, returns: np.ndarray, threshold: float, xlabel: str
):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for s, curve in enumerate(returns):
        ax.plot(steps, curve, lw=0.8, alpha=0.6, label=f"seed {s}")
    ax.plot(steps, returns.mean(0), color="black", lw=2.0, label="mean")
    ax.axhline(threshold, color="red", ls="--", lw=1.0, label=f"threshold {threshold:g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("eval return (deterministic policy)")
    ax.set_title(name)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="x-small")
    fig.tight_layout()
    fig.savefig(path, format="png")


def run_task(name: str, args: argparse.Namespace, out: str) -> dict:
    import jax

    from purerl import agents, cli, envs
    from purerl.loops import common, writers

    task = TASKS[name]
    module = agents.get(task.agent)
    agent_config = dataclasses.replace(module.Config(), **dict(task.agent_switch))
    steps = task.steps
    eval_every = task.eval_every
    loop_set = list(task.loop_set)
    if args.quick:  # two evaluations of two episodes: checks the plumbing only
        eval_every = None
        loop_set.append("eval_episodes=2")
    kind = module.LOOP
    extra = {}
    if kind == "offline":
        from purerl import experts
        from purerl.loops import offline

        dataset = experts.load_or_generate(task.env)
        meta = dataset.metadata
        if hasattr(module, "prepare"):
            agent_config = module.prepare(agent_config, dataset)
        expert_return = float(meta["mean_episode_return"])
        threshold = task.expert_fraction * expert_return
        if args.quick:
            steps = 200
            eval_every = 100
        loop_config = offline.Config(
            total_steps=steps,
            eval_every=eval_every or steps,
            **{k: int(v) for k, v in (s.split("=") for s in loop_set)},
        )
        env = envs.make(meta["env"], backend=meta["backend"])
        algo = module.make(agent_config, env.spec)
        data = offline.prepare_data(
            dataset, loop_config, getattr(module, "NEEDS_NEXT_ACTION", False)
        )
        train = offline.make_train(algo, env, loop_config)
        train_args = (data,)
        step_name, backend = "updates", meta["backend"]
        extra = {
            "expert_return": expert_return,
            "random_return": float(meta["ref_min_score"]),
            "dataset_size": len(dataset),
        }
    else:
        loop_module = importlib.import_module(f"purerl.loops.{kind}")
        if args.quick:
            steps = _quick_steps(task, loop_module)
            eval_every = steps // 2
        ns = _namespace(dataclasses.replace(task, loop_set=tuple(loop_set)), steps, eval_every)
        loop_config, _ = cli.loop_config(loop_module, kind, agent_config, ns)
        env = envs.make(task.env)
        algo = module.make(agent_config, env.spec)
        train = loop_module.make_train(algo, env, loop_config)
        train_args = ()
        threshold = task.threshold
        step_name = "env_steps"
        backend = envs.BRAX_DEFAULT_BACKEND.get(task.env, "pure JAX")

    print(f"[{name}] agent {task.agent}: {agent_config}", flush=True)
    print(f"[{name}] loop ({kind}): {loop_config}", flush=True)
    start = time.perf_counter()
    # check=False: a NaN/inf fails this task (recorded below) instead of stopping the suite.
    states, metrics = common.run_seeds(
        train, jax.random.key(args.seed), args.seeds, check=False, args=train_args
    )
    jax.block_until_ready(states)
    wall = time.perf_counter() - start
    bad = np.asarray(metrics.get("check/nonfinite_step", np.full((args.seeds, 1), -1)))[:, -1]

    returns = np.asarray(metrics["eval/return"], np.float64)  # [seeds, evals]
    at = np.asarray(metrics[step_name])[0]
    final = returns[:, -1]
    mean, lo, hi = bootstrap_ci(final, task.bounds)
    firsts = [first_reached(c, at, threshold) for c in returns]
    record = {
        "task": name,
        "agent": task.agent,
        "env": task.env,
        "backend": backend,
        "quick": bool(args.quick),
        "seeds": args.seeds,
        "seed": args.seed,
        "steps": int(at[-1]),
        "step_unit": step_name,
        "threshold": threshold,
        "source": task.source,
        "final_returns": [float(v) for v in final],
        "first_reached": firsts,
        "mean": mean,
        "ci95": [lo, hi],
        "passed": bool(np.all(final >= threshold) and np.all(bad < 0)),
        "nonfinite_step": [int(b) for b in bad],  # first env step with NaN/inf per seed, -1 none
        "wall_s": wall,
        "agent_config": dataclasses.asdict(agent_config),
        "loop_config": dataclasses.asdict(loop_config),
        "command": command(
            dataclasses.replace(task, loop_set=tuple(loop_set)), steps, eval_every, args.seeds
        ),
        "provenance": provenance(),
        **extra,
    }
    os.makedirs(out, exist_ok=True)
    writers.write_csv(os.path.join(out, f"{name}.csv"), metrics)
    xlabel = "env steps" if step_name == "env_steps" else "gradient updates"
    title = f"{name} ({backend})" + (" [QUICK]" if args.quick else "")
    plot(os.path.join(out, f"{name}.png"), title, at, returns, threshold, xlabel)
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(record, f, indent=2, default=str)
    verdict = "PASS" if record["passed"] else "FAIL"
    print(
        f"[{name}] {verdict}: final {np.round(final, 1).tolist()} (threshold {threshold:g}), "
        f"first reached {firsts}, {wall:.0f} s",
        flush=True,
    )
    return record


def _quick_steps(task: Task, loop_module) -> int:
    """A tiny run: two eval periods of the smallest unit the loop allows (past warm-up for the
    online loop, so updates run)."""
    cfg = loop_module.Config()
    num_envs = task.num_envs or cfg.num_envs
    unroll = 64 if "unroll_length=64" in task.loop_set else getattr(cfg, "unroll_length", 1)
    unit = num_envs * unroll
    per_eval = max(unit, 200 // unit * unit)
    return 2 * per_eval


def _fmt(v: float) -> str:
    return f"{v:,.1f}"


def summary(out: str, md_path: str, quick: bool) -> str:
    records = []
    if os.path.isdir(out):
        for fname in sorted(os.listdir(out)):
            if fname.endswith(".json"):
                with open(os.path.join(out, fname)) as f:
                    records.append(json.load(f))
    order = {name: i for i, name in enumerate(TASKS)}
    records.sort(key=lambda r: order.get(r["task"], len(order)))
    passed = sum(r["passed"] for r in records)
    lines = [
        "# Sanity suite: every agent at its default config on tasks with known answers",
        "",
    ]
    if quick:
        lines += [
            "**QUICK MODE: tiny step counts that only check the script runs end to end. These "
            "numbers say nothing about learning.**",
            "",
        ]
    lines += [
        "Each task: the agent's `Config()` as it was at run time (recorded in `sanity/<task>.json`), "
        "the listed loop settings, all seeds vmapped in one compiled program. Pass = every seed's "
        "final evaluation (deterministic policy, 10 episodes; 2 in quick mode) at or above the "
        "threshold. `first reached` = the first evaluation at which each seed's return was at or "
        "above the threshold (`-` never). Mean with a 95% percentile-bootstrap interval over seeds, "
        "clipped to the returns the task can produce. Wall time includes compilation (no persistent "
        "compilation cache). Rerun a task: `python -m benchmarks.sanity --only TASK`; the "
        "`command` column is the same configuration through the CLI. Script: "
        "`benchmarks/sanity.py`.",
        "",
        f"**{passed} of {len(records)} tasks pass.**",
        "",
        "| task | env (backend) | steps | threshold | per-seed final return | first reached | "
        "mean [95% CI] | pass | wall s | command |",
        "|---|---|---:|---:|---|---|---|---|---:|---|",
    ]
    for r in records:
        unit = "" if r["step_unit"] == "env_steps" else " updates"
        finals = ", ".join(f"{v:.0f}" for v in r["final_returns"])
        firsts = ", ".join("-" if v is None else f"{v:,}" for v in r["first_reached"])
        if any(b >= 0 for b in r.get("nonfinite_step", [])):
            finals += f" (NaN/inf at steps {r['nonfinite_step']})"
        lo, hi = r["ci95"]
        lines.append(
            f"| {r['task']} | {r['env']} ({r['backend']}) | {r['steps']:,}{unit} | "
            f"{r['threshold']:,.1f} | {finals} | {firsts} | {_fmt(r['mean'])} "
            f"[{_fmt(lo)}, {_fmt(hi)}] | {'yes' if r['passed'] else '**no**'} | "
            f"{r['wall_s']:.0f} | `{r['command']}` |"
        )
    lines += [
        "",
        "## Thresholds and their sources",
        "",
        "| task | threshold | source |",
        "|---|---|---|",
    ]
    for r in records:
        extra = ""
        if "expert_return" in r:
            extra = (
                f" (expert return {r['expert_return']:,.1f}; uniform random actions "
                f"{r['random_return']:,.1f})"
            )
        lines.append(f"| {r['task']} | {r['threshold']:,.1f}{extra} | {r['source']} |")
    lines += ["", "## Curves", ""]
    rel = os.path.relpath(out, os.path.dirname(md_path))
    for r in records:
        lines.append(f"![{r['task']}]({rel}/{r['task']}.png)")
    if records:
        lines += ["", "## Provenance (last run)", "", records[-1]["provenance"]]
    text = "\n".join(lines) + "\n"
    with open(md_path, "w") as f:
        f.write(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help=f"comma-separated tasks of: {', '.join(TASKS)}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--quick", action="store_true", help="tiny step counts; writes sanity_quick.md"
    )
    parser.add_argument("--summary", action="store_true", help="only rebuild the table")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(TASKS)
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; tasks: {', '.join(TASKS)}")
    out = os.path.join(RESULTS, "sanity_quick" if args.quick else "sanity")
    md_path = os.path.join(RESULTS, "sanity_quick.md" if args.quick else "sanity.md")
    if not args.summary:
        for name in names:
            run_task(name, args, out)
    print(summary(out, md_path, args.quick))


if __name__ == "__main__":
    main()
