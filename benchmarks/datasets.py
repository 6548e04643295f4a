"""Experts and D4RL-style datasets on the offline envs: expert curves, wall times, level returns.

    python -m benchmarks.datasets --envs inverted_double_pendulum        # one env (expert + levels)
    python -m benchmarks.datasets --summary                              # rebuild datasets.md

Each env run trains (or reuses) the cached expert of ``purerl.datasets.PRESETS`` and generates
every level with its default size through ``purerl.experts.load_or_generate`` (the same path as
``purerl generate dataset``), then stores a JSON record in ``results/datasets/<env>.json`` and the
expert's curve in ``results/datasets/<env>_expert.png``. ``--summary`` writes
``results/datasets.md`` from all records.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from benchmarks._common import RESULTS, provenance

OUT = os.path.join(RESULTS, "datasets")
ENVS = ("inverted_double_pendulum", "reacher", "halfcheetah")


def run_env(env: str, seed: int, force: bool) -> dict:
    from purerl import experts

    start = time.perf_counter()
    expert = experts.get_expert(env, seed, regenerate=force)
    info = expert.info
    record = {
        "env": env,
        "seed": seed,
        "provenance": provenance(),
        "expert": {k: v for k, v in info.items() if k not in ("versions",)},
        "versions": info["versions"],
        "levels": {},
    }
    for level in experts.LEVELS:
        t0 = time.perf_counter()
        ds = experts.load_or_generate(f"{env}-{level}", seed=seed, regenerate=force)
        returns = ds.episode_returns()
        record["levels"][level] = {
            "size": len(ds),
            "episodes": int(returns.shape[0]),
            "mean_return": float(returns.mean()),
            "std_return": float(returns.std()),
            "normalized": float(ds.normalized_score(returns.mean())),
            "wall_s": time.perf_counter() - t0,
        }
        print(env, level, record["levels"][level], flush=True)
    record["total_wall_s"] = time.perf_counter() - start
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f"{env}.json"), "w") as f:
        json.dump(record, f, indent=2)
    plot_expert(record)
    return record


def plot_expert(record: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    info = record["expert"]
    steps, returns = info["curve"]["env_steps"], info["curve"]["eval_return"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, returns, marker=".", label=f"{info['agent']} (eval, deterministic)")
    ax.axhline(info["ref_max_score"], color="g", ls="--", lw=1, label="expert reference")
    ax.axhline(info["ref_min_score"], color="r", ls="--", lw=1, label="random reference")
    ax.axvline(steps[info["medium_period"] - 1], color="orange", lw=1, label="medium policy")
    ax.set_xlabel("env steps")
    ax.set_ylabel("return")
    ax.set_title(f"{record['env']} expert ({info['backend'] or 'jax'})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, f"{record['env']}_expert.png"), dpi=120)
    plt.close(fig)


def summary() -> str:
    records = []
    for name in sorted(os.listdir(OUT)):
        if name.endswith(".json"):
            with open(os.path.join(OUT, name)) as f:
                records.append(json.load(f))
    lines = [
        "# Experts and datasets",
        "",
        "Generated locally by `purerl.experts` (nothing downloaded). Per env: one expert run (seed 0) "
        "with the preset in `purerl/datasets/registry.py`, then every D4RL level with its default "
        "size. Normalized score = 100 (R - R_random) / (R_expert - R_random) with the references "
        "stored in each dataset (20 episodes each: uniform random actions; the expert, "
        "deterministic). Returns are brax physics returns, not comparable with D4RL's gym MuJoCo "
        "(docs/datasets.md).",
        "",
        "## Experts",
        "",
        "| env | backend | agent | env steps | training wall s | random ref | expert ref | "
        "expert period | medium period | medium return (normalized) | curve |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        e = r["expert"]
        lines.append(
            f"| {r['env']} | {e['backend']} | {e['agent']} | {e['loop_config']['total_steps']:,} | "
            f"{e['train_wall_s']:.0f} | {e['ref_min_score']:.1f} | {e['ref_max_score']:.1f} | "
            f"{e['expert_period']}/{len(e['curve']['eval_return'])} | {e['medium_period']} | "
            f"{e['medium_return']:.1f} ({e['medium_normalized']:.0f}) | "
            f"[png](datasets/{r['env']}_expert.png) |"
        )
    lines += [
        "",
        "## Dataset levels (mean episode return in the data, with exploration noise)",
        "",
        "| env | level | transitions | episodes | mean length | mean return ± std | normalized | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        for level, v in r["levels"].items():
            lines.append(
                f"| {r['env']} | {level} | {v['size']:,} | {v['episodes']} | "
                f"{v['size'] / max(v['episodes'], 1):.0f} | {v['mean_return']:.1f} ± {v['std_return']:.1f} | {v['normalized']:.1f} | "
                f"{v['wall_s']:.1f} |"
            )
    lines += [
        "",
        "`mean length` = transitions / episodes. medium-replay episodes are cut at the expert run's "
        "evaluation-period boundaries (docs/datasets.md, deviation 1: period steps / parallel envs, "
        "e.g. 250 steps on reacher), so their returns sum fewer steps than a full 1000-step "
        "episode and their normalized score is not a policy's score: compare it with the other "
        "levels only per step. The offline results (results/offline.md) score policies by full "
        "evaluation episodes.",
    ]
    lines += ["", "## Provenance of each env's run", ""]
    for r in records:
        lines += [f"### {r['env']}", "", r["provenance"], f"- versions: {r['versions']}", ""]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(RESULTS, "datasets.md"), "w") as f:
        f.write(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default=",".join(ENVS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="retrain and regenerate")
    parser.add_argument("--summary", action="store_true", help="only rebuild datasets.md")
    args = parser.parse_args()
    if not args.summary:
        for env in args.envs.split(","):
            run_env(env, args.seed, args.force)
    print(summary())


if __name__ == "__main__":
    main()
