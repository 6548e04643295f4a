"""Offline RL on the generated datasets: normalized scores, CVAE bonus ROC-AUC, Q-sarsa Spearman.

    python -m benchmarks.offline --env inverted_double_pendulum --seeds 5   # 50k TD3 updates
    python -m benchmarks.offline --summary          # rebuild results/offline.md from the records

Per (env, level, algorithm): all seeds vmapped in one compiled offline run (``loops.offline``),
final normalized score mean and 95% t-CI over seeds, best period, wall time incl. compilation.

Every method gets ``--steps`` TD3 (or BC) updates. Pre-training is counted apart and added to the
loop's updates: TD3-CVAE trains its CVAE alone for ``--cvae-epochs`` passes over the dataset
(``cvae_steps``), Qsarsa trains Q_sarsa alone for ``qsarsa.Config.sarsa_steps`` updates; both are
rounded up to a whole number of evaluation periods. The CVAE's reconstruction loss per period
(``cvae/recon``) is printed, kept in the record and plotted (``<env>-<level>-cvae_recon.png``).
Expected cost on the 2-core CPU (64x64 networks, 256x256 CVAE, 5 seeds, 50k TD3 updates),
extrapolated from the 5k-update records (~100 s each), not measured: ~10 min per BC / TD3 / TD3+BC
run, ~20 min per Qsarsa variant (50k SARSA updates first), ~30-40 min for TD3-CVAE (~25k CVAE
updates first, then a CVAE forward pass in every TD3 update); ~1.5-2 h per (env, level), ~6-8 h
for one env's 4 levels x 6 methods, more when the CPU is shared.
After the runs, two diagnostics of the papers' claims on the trained agents (seed 0):

* TD3-CVAE: ROC-AUC of the CVAE bonus separating dataset actions (lower bonus) from uniformly
  random actions at the same states (Rezaeifar et al. 2022: the bonus is low on the data's support).
* Q-sarsa: Spearman correlation between Q_sarsa(s, a) and the discounted Monte-Carlo return-to-go of
  the behaviour policy on held-out trajectories (a second dataset of the same level, other seed).
  Only transitions whose return-to-go is exact up to gamma^460 < 1% are kept (the episode
  terminates, or at least 460 steps remain before its timeout).

Records go to ``results/offline/<env>-<level>-<algo>.json`` (+ metrics CSV); ``--summary`` writes
``results/offline.md`` and one learning-curve PNG per (env, level) from those files alone (no
training), with an aggregate section over all datasets: IQM, optimality gap, mean, median and
probability of improvement over BC with stratified bootstrap CIs, and a performance profile
(``results/offline/profile.png``), as in rliable (Agarwal et al. 2021; ``purerl.stats``).
Intervals and bands are clipped to the normalized range each env's returns can take
(``envs.return_bounds``, normalized with the datasets' reference returns).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Iterable

import numpy as np

from benchmarks._common import RESULTS, provenance

OUT = os.path.join(RESULTS, "offline")
BATCH = 256  # TD3+BC paper, Table 3 (the loop's default)
LEVELS = ("medium", "medium-replay", "medium-expert", "expert")
# label -> (agent module, overrides); network sizes are set by --hidden for all.
ALGOS = {
    "BC": ("bc", {}),
    # Plain TD3 as the offline papers' baseline: raw observations like the offline variants
    # (online TD3 normalizes them by default since issue 13; the offline loop's normalize_obs
    # standardizes the dataset for every agent alike).
    "TD3": ("td3", {"normalize_observations": False}),
    "TD3+BC": ("td3_bc", {}),
    "TD3-CVAE": ("td3_cvae", {}),
    "Qsarsa-AC": ("qsarsa", {"variant": "ac"}),
    "Qsarsa-AC2": ("qsarsa", {"variant": "ac2"}),
}


def _slug(label: str) -> str:
    return label.lower().replace("+", "_").replace("-", "_")


def agent_config(module, overrides: dict, args, dataset_size: int):
    """The agent's Config: ``--hidden`` networks; TD3-CVAE's CVAE ``--cvae-hidden`` trained for
    ``--cvae-epochs`` passes over the data; pre-training rounded up to whole eval periods."""
    fields = {f.name for f in dataclasses.fields(module.Config)}
    kw = dict(overrides)
    if "hidden" in fields:
        kw["hidden"] = tuple(args.hidden)
    if "cvae_hidden" in fields:
        kw.setdefault("cvae_hidden", tuple(args.cvae_hidden))
        kw.setdefault("cvae_steps", math.ceil(args.cvae_epochs * dataset_size / BATCH))
    period = args.steps // args.evals
    for name in ("cvae_steps", "sarsa_steps"):
        if name in fields:
            steps = kw.get(name, getattr(module.Config, name))
            kw[name] = math.ceil(steps / period) * period
    return module.Config(**kw)


def pretrain_updates(config) -> int:
    """Updates before the first TD3 step (CVAE or Q_sarsa alone); 0 for the other methods."""
    return getattr(config, "cvae_steps", 0) + getattr(config, "sarsa_steps", 0)


def run_one(env_name, level, label, args, dataset, heldout):
    import jax

    from purerl import agents, envs
    from purerl.loops import common, offline, plots, writers

    name, overrides = ALGOS[label]
    module = agents.get(name)
    overrides = {**overrides, **args.overrides}
    config = agent_config(module, overrides, args, len(dataset))
    if getattr(config, "auto_reward_scale", False) and np.ptp(dataset.rewards) == 0:
        # a constant reward (inverted_pendulum: 1 per step) has no 1 / (max r - min r) scale;
        # keep the rewards as they are (reward_scale = 1) and record it in agent_config
        config = dataclasses.replace(config, auto_reward_scale=False)
    if hasattr(module, "prepare"):
        config = module.prepare(config, dataset)
    pre = pretrain_updates(config)
    loop_config = offline.Config(
        total_steps=args.steps + pre,
        batch_size=BATCH,
        eval_every=args.steps // args.evals,
        eval_episodes=10,
    )
    env = envs.make(env_name, backend=dataset.metadata["backend"])
    algo = module.make(config, env.spec)
    data = offline.prepare_data(dataset, loop_config, getattr(module, "NEEDS_NEXT_ACTION", False))
    refs = (dataset.metadata["ref_min_score"], dataset.metadata["ref_max_score"])
    train = offline.make_train(algo, env, loop_config, ref_scores=refs)
    start = time.perf_counter()
    states, metrics = common.run_seeds(
        train, jax.random.key(args.seed), args.seeds, check=False, args=(data,)
    )
    jax.block_until_ready(states)
    wall = time.perf_counter() - start
    tag = f"{env_name}-{level}-{_slug(label)}" + (f"-{args.tag}" if args.tag else "")
    os.makedirs(OUT, exist_ok=True)
    writers.write_csv(os.path.join(OUT, f"{tag}.csv"), metrics)
    mean, half, _ = plots.final_ci(metrics, "eval/normalized")
    curve = np.asarray(metrics["eval/normalized"]).mean(0)
    record = {
        "env": env_name,
        "level": level,
        "algo": label,
        "tag": args.tag,
        "overrides": args.overrides,
        "agent": name,
        "agent_config": dataclasses.asdict(config),
        "loop_config": dataclasses.asdict(loop_config),
        "seeds": args.seeds,
        "td3_updates": args.steps,
        "pretrain_updates": pre,
        "final_normalized": mean,
        "final_ci": half,
        "best_mean_normalized": float(np.nanmax(curve)),
        "final_q_mean": float(np.asarray(metrics.get("q/mean", [[np.nan]]))[:, -1].mean()),
        "data_normalized": float(dataset.normalized_score(dataset.metadata["mean_episode_return"])),
        "wall_s": wall,
        "provenance": provenance(),
    }
    seed0 = jax.tree.map(lambda x: x[0], states.agent)
    if name == "td3_cvae":
        record["bonus_auc"] = cvae_auc(module, config, env.spec, seed0, data)
        n_pre = pre // loop_config.eval_every
        recon = np.asarray(metrics["cvae/recon"]).mean(0)[:n_pre]
        record["cvae_recon_curve"] = [float(x) for x in recon]
        print(
            f"{tag}: cvae/recon per {loop_config.eval_every} updates: "
            + " ".join(f"{x:.4f}" for x in recon),
            flush=True,
        )
    if name == "qsarsa":
        record["sarsa_spearman"] = sarsa_spearman(module, seed0, heldout, data, config.discount)
    with open(os.path.join(OUT, f"{tag}.json"), "w") as f:
        json.dump(record, f, indent=2, default=str)
    print(f"{tag}: {mean:.1f} ± {half:.1f} ({wall:.0f} s)", flush=True)
    return record


def auc(neg: np.ndarray, pos: np.ndarray) -> float:
    """P(score(pos) > score(neg)) + 0.5 P(tie): ROC-AUC via ranks (Mann-Whitney U)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([neg, pos]))
    r_pos = ranks[neg.shape[0] :].sum()
    n_pos, n_neg = pos.shape[0], neg.shape[0]
    return float((r_pos - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def cvae_auc(module, config, spec, state, data, n=5000) -> float:
    import jax

    tr = data.transitions
    idx = np.random.default_rng(0).choice(tr.reward.shape[0], n, replace=False)
    obs, act = np.asarray(tr.obs)[idx], np.asarray(tr.action)[idx]
    rand = np.random.default_rng(1).uniform(-1, 1, act.shape).astype(np.float32)
    cvae = module.cvae_network(config, spec)
    b = jax.jit(lambda o, a, k: module.bonus(state.extra.params, o, a, k, cvae, config))
    data_bonus = np.asarray(b(obs, act, jax.random.key(0)))
    rand_bonus = np.asarray(b(obs, rand, jax.random.key(1)))
    return auc(data_bonus, rand_bonus)  # positive class: random actions (higher bonus)


def returns_to_go(ds, discount: float, horizon: int = 460):
    """Discounted MC return-to-go per transition and a mask of those that are exact to < 1%."""
    n = len(ds)
    g = np.zeros(n, np.float64)
    exact = np.zeros(n, bool)
    ends = ds.terminals | ds.timeouts
    running, steps_left, terminal_ep = 0.0, 0, False
    for i in range(n - 1, -1, -1):
        if ends[i]:
            running, steps_left, terminal_ep = 0.0, 0, bool(ds.terminals[i])
        running = ds.rewards[i] + discount * running
        steps_left += 1
        g[i] = running
        exact[i] = terminal_ep or steps_left >= horizon
    return g, exact


def sarsa_spearman(module, state, heldout, data, discount: float, n=5000) -> float:
    import jax
    from scipy.stats import spearmanr

    g, exact = returns_to_go(heldout, discount)
    idx = np.nonzero(exact)[0]
    idx = np.random.default_rng(0).choice(idx, min(n, idx.size), replace=False)
    obs = (heldout.observations[idx] - np.asarray(data.obs_mean)) / np.asarray(data.obs_std)
    q = np.asarray(jax.jit(module.sarsa_q)(state, obs, heldout.actions[idx]))
    return float(spearmanr(q, g[idx]).statistic)


DATASETS = os.path.join(RESULTS, "datasets")  # the experts' records: reference returns per env
AGG_REPS = 50_000  # bootstrap resamples for the aggregate CIs (rliable's default)
PROFILE_TAUS = np.linspace(0.0, 1.1, 111)  # normalized-score thresholds / 100


def implied_references(metrics: dict) -> tuple[float, float] | None:
    """``(random, expert)`` reference returns behind a run's ``eval/normalized`` column, solved
    from ``N = 100 (R - R_random) / (R_expert - R_random)`` at its two most distant eval returns;
    None when they are less than 50 apart (too close for a precise fit)."""
    ret = np.asarray(metrics["eval/return"], np.float64).ravel()
    norm = np.asarray(metrics["eval/normalized"], np.float64).ravel()
    i, j = int(np.argmin(ret)), int(np.argmax(ret))
    if ret[j] - ret[i] < 50.0:
        return None
    slope = (norm[j] - norm[i]) / (ret[j] - ret[i])  # 100 / (R_expert - R_random)
    random = ret[i] - norm[i] / slope
    return float(random), float(random + 100.0 / slope)


def run_references(metrics: dict, candidates: list[tuple[float, float]]) -> tuple[float, float]:
    """The candidate ``(random, expert)`` that reproduces the run's ``eval/normalized`` column
    from its ``eval/return`` (to 0.01); ``ValueError`` if none does."""
    from purerl.datasets import schema

    ret = np.asarray(metrics["eval/return"], np.float64)
    norm = np.asarray(metrics["eval/normalized"], np.float64)
    errors = [np.max(np.abs(schema.normalized_score(ret, *c) - norm)) for c in candidates]
    best = int(np.argmin(errors))
    if errors[best] > 0.01:
        raise ValueError(f"no reference returns among {candidates} reproduce this run's scores")
    return candidates[best]


def reference_candidates(env: str, runs: list[dict]) -> list[tuple[float, float]]:
    """The reference returns ``env``'s records were normalized with: the expert's record in
    ``results/datasets/<env>.json`` and those implied by each run's CSV (datasets generated at
    other times carry re-measured references), each kept once."""
    with open(os.path.join(DATASETS, f"{env}.json")) as f:
        expert = json.load(f)["expert"]
    out = [(float(expert["ref_min_score"]), float(expert["ref_max_score"]))]
    for metrics in runs:
        refs = implied_references(metrics)
        if refs is not None and all(np.abs(np.subtract(refs, c)).max() > 0.5 for c in out):
            out.append(refs)
    return out


def normalized_bounds(env: str, refs: tuple[float, float]) -> tuple[float | None, float | None]:
    """The D4RL-normalized scores ``env``'s returns can take (``envs.return_bounds``) under the
    reference returns ``refs``; None where the return has no known bound."""
    from purerl import envs
    from purerl.datasets import schema

    return tuple(
        None if b is None else float(schema.normalized_score(b, *refs))
        for b in envs.return_bounds(env)
    )


def union_bounds(
    bounds: list[tuple[float | None, float | None]],
) -> tuple[float | None, float | None]:
    """The smallest range holding every range in ``bounds`` (None: unbounded on that side)."""
    lows, highs = [b[0] for b in bounds], [b[1] for b in bounds]
    return (
        None if None in lows else min(lows),
        None if None in highs else max(highs),
    )


def return_ranges(envs_: Iterable[str]) -> str:
    """``"inverted_pendulum returns in [0, 1000], reacher <= 0"``: the known return ranges."""
    from purerl import envs

    out = []
    for env in envs_:
        low, high = envs.return_bounds(env)
        if low is not None and high is not None:
            out.append(f"{env} returns in [{low:g}, {high:g}]")
        elif high is not None:
            out.append(f"{env} returns <= {high:g}")
        elif low is not None:
            out.append(f"{env} returns >= {low:g}")
    return ", ".join(out) or "no env here has a known return range"


def references_note(records: list[dict], refs_of: dict, tag_of: Callable) -> str:
    """Which levels' datasets carry which reference returns, for envs where they differ."""
    notes = []
    for env in sorted({r["env"] for r in records}):
        levels: dict[tuple[float, float], set[str]] = {}
        for r in records:
            if r["env"] == env and tag_of(r) in refs_of:
                refs = tuple(round(x, 1) for x in refs_of[tag_of(r)])
                levels.setdefault(refs, set()).add(r["level"])
        if len(levels) > 1:
            notes.append(
                f"{env}: "
                + "; ".join(
                    f"random {a:g} / expert {b:g} for {', '.join(sorted(lv))}"
                    for (a, b), lv in sorted(levels.items())
                )
            )
    if not notes:
        return ""
    return (
        "The datasets of one env do not all share reference returns (read off each run's CSV: "
        "the references stored in each dataset when it was generated), so the same normalized "
        "score stands for a different return on different levels: " + ". ".join(notes) + "."
    )


def aggregate_section(finals: dict, tasks: list, note: str) -> list[str]:
    """The rliable-style aggregates over ``tasks`` = (env, level) pairs: ``finals[algo][task]`` is
    the per-seed final normalized score ``[seeds]``; writes ``offline/profile.png``."""
    from purerl import stats

    scores = {a: np.stack([finals[a][t] for t in tasks], axis=1) / 100.0 for a in finals}
    agg = lambda x: np.stack(
        [stats.iqm(x), stats.optimality_gap(x), stats.mean(x), stats.median(x)], axis=-1
    )
    points, cis = stats.interval_estimates(scores, agg, reps=AGG_REPS, seed=0)
    base = "BC"
    pairs = {a: (scores[a], scores[base]) for a in scores if a != base}
    poi, poi_ci = stats.interval_estimates(
        pairs, stats.probability_of_improvement, reps=AGG_REPS, seed=0
    )
    profiles, bands = stats.performance_profile(scores, PROFILE_TAUS, seed=0)
    png = "profile.png"
    stats.plot_performance_profile(
        PROFILE_TAUS,
        profiles,
        bands,
        os.path.join(OUT, png),
        xlabel="normalized score / 100 = τ (0 = random, 1 = expert)",
        title=f"Offline RL: run-score distributions over {len(tasks)} datasets",
        reference={"expert": 1.0},
    )
    runs = {a: scores[a].shape[0] for a in scores}
    lines = [
        "",
        f"## Aggregates over the {len(tasks)} datasets (rliable's metrics)",
        "",
        "Per method, the final normalized score of every seed on every dataset (env x level "
        "above), divided by 100 (1 = expert, 0 = uniform random actions): "
        f"{', '.join(f'{a} {n}' for a, n in runs.items())} seeds x {len(tasks)} datasets. "
        "IQM = mean of the middle 50% of all those scores, optimality gap = mean shortfall "
        "max(0, 1 - score) (lower is better), mean and median of the per-dataset means, and "
        "P(X > BC) = probability that a run of the method beats a run of BC on the same "
        "dataset, averaged over datasets (Agarwal et al., NeurIPS 2021; `purerl.stats`). "
        f"[95% CI]: stratified percentile bootstrap, {AGG_REPS:,} resamples of the seeds within "
        "each dataset (seed 0). Scores are not clipped: a normalized score can exceed 1 "
        "(above our expert) or fall below 0.",
        "",
        "| method | IQM | optimality gap | mean | median | P(X > BC) |",
        "|---|---|---|---|---|---|",
    ]
    for a in scores:
        cells = [stats.format_interval(points[a][i], cis[a][:, i]) for i in range(4)]
        cells.append("" if a == base else stats.format_interval(poi[a], poi_ci[a]))
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"![performance profile](offline/{png})",
        "",
        "Performance profile: fraction of all runs (seeds x datasets) whose normalized score / 100 "
        "exceeds τ, with 95% stratified bootstrap bands (2,000 resamples, seed 0). " + note,
    ]
    return lines


def summary() -> str:
    import matplotlib

    matplotlib.use("Agg")
    from purerl.loops import plots, writers

    records = []
    for name in sorted(os.listdir(OUT)):
        if name.endswith(".json"):
            with open(os.path.join(OUT, name)) as f:
                records.append(json.load(f))
    probes = [r for r in records if r.get("tag")]  # runs with --set overrides (--tag)
    records = [r for r in records if not r.get("tag")]
    envs_levels = sorted({(r["env"], r["level"]) for r in records})
    algos = [a for a in ALGOS if any(r["algo"] == a for r in records)]
    by = {(r["env"], r["level"], r["algo"]): r for r in records}
    # Each run's metrics CSV, the reference returns it was normalized with and the normalized
    # range its env's returns can reach (for clipping intervals and bands).
    tag_of = lambda r: (
        f"{r['env']}-{r['level']}-{_slug(r['algo'])}" + (f"-{r['tag']}" if r.get("tag") else "")
    )
    csvs = {}
    for r in records + probes:
        path = os.path.join(OUT, f"{tag_of(r)}.csv")
        if os.path.exists(path):
            csvs[tag_of(r)] = writers.read_csv(path)
    metrics = {
        (r["env"], r["level"], r["algo"]): csvs[tag_of(r)] for r in records if tag_of(r) in csvs
    }
    candidates = {
        env: reference_candidates(env, [m for t, m in csvs.items() if t.startswith(f"{env}-")])
        for env in sorted({r["env"] for r in records + probes})
    }
    refs_of = {
        t: run_references(csvs[t], candidates[r["env"]])
        for r in records + probes
        if (t := tag_of(r)) in csvs
    }
    bounds_of = lambda r: (
        normalized_bounds(r["env"], refs_of[tag_of(r)])
        if tag_of(r) in refs_of
        else normalized_bounds(r["env"], candidates[r["env"]][0])
    )
    cell = lambda r: plots.format_ci(r["final_normalized"], r["final_ci"], 1, bounds_of(r))
    row_bounds = {  # (env, level) -> the range of its curves and of the aggregates' datasets
        (env, level): union_bounds(
            [bounds_of(by[(env, level, a)]) for a in algos if (env, level, a) in by]
        )
        for env, level in envs_levels
    }
    lines = [
        "# Offline RL on purerl's generated datasets",
        "",
        "Final D4RL-normalized score (100 = our expert, 0 = uniform random actions; "
        "docs/datasets.md) at the last evaluation, mean ± 95% t-CI over seeds vmapped in one "
        "compiled run, clipped to the normalized scores the env's returns can reach "
        f"({return_ranges(candidates)}: `envs.return_bounds`; normalized with the reference returns of each run's "
        "dataset; the cell reads `mean [low, high]` where the clip binds); best = best "
        "seed-mean period. Rerun: see the command in each run's provenance below. `data` = "
        "normalized mean return of the dataset's own episodes.",
        "",
        "| env | level | data | " + " | ".join(algos) + " |",
        "|---|---|---|" + "---|" * len(algos),
    ]
    for env, level in envs_levels:
        cells = []
        data_score = ""
        for a in algos:
            r = by.get((env, level, a))
            if r is None:
                cells.append("")
                continue
            data_score = f"{r['data_normalized']:.1f}"
            cells.append(cell(r))
        lines.append(f"| {env} | {level} | {data_score} | " + " | ".join(cells) + " |")
    lines += ["", "Best seed-mean period (normalized) / final mean Q:", ""]
    lines += ["| env | level | " + " | ".join(algos) + " |", "|---|---|" + "---|" * len(algos)]
    for env, level in envs_levels:
        cells = []
        for a in algos:
            r = by.get((env, level, a))
            cells.append(
                "" if r is None else f"{r['best_mean_normalized']:.1f} / {r['final_q_mean']:.3g}"
            )
        lines.append(f"| {env} | {level} | " + " | ".join(cells) + " |")
    tasks = [t for t in envs_levels if all((*t, a) in metrics for a in algos)]
    if tasks and "BC" in algos:
        finals = {a: {t: metrics[(*t, a)]["eval/normalized"][:, -1] for t in tasks} for a in algos}
        lines += aggregate_section(finals, tasks, references_note(records, refs_of, tag_of))
    notes = os.path.join(RESULTS, "offline_notes.md")
    if os.path.exists(notes):  # hand-written reading of the numbers above, kept across reruns
        with open(notes) as f:
            lines += ["", f.read().rstrip()]
    lines += [
        "",
        "## Diagnostics",
        "",
        "| env | level | TD3-CVAE bonus ROC-AUC (data vs uniform actions) | CVAE recon first -> last period | Qsarsa-AC Spearman(Q_sarsa, MC return) | Qsarsa-AC2 Spearman |",
        "|---|---|---|---|---|---|",
    ]
    for env, level in envs_levels:
        cv = by.get((env, level, "TD3-CVAE"), {}).get("bonus_auc")
        s1 = by.get((env, level, "Qsarsa-AC"), {}).get("sarsa_spearman")
        s2 = by.get((env, level, "Qsarsa-AC2"), {}).get("sarsa_spearman")
        fmt = lambda v: "" if v is None else f"{v:.3f}"
        curve = by.get((env, level, "TD3-CVAE"), {}).get("cvae_recon_curve") or []
        rc = f"{curve[0]:.4f} -> {curve[-1]:.4f}" if curve else ""
        lines.append(f"| {env} | {level} | {fmt(cv)} | {rc} | {fmt(s1)} | {fmt(s2)} |")
    if probes:
        lines += [
            "",
            "## Probes (the same benchmark with `--set` overrides, `--tag`)",
            "",
            "| env | level | algo | overrides | updates | final normalized | best period | final mean Q |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in sorted(probes, key=lambda r: (r["env"], r["level"], r["algo"], r["tag"])):
            lines.append(
                f"| {r['env']} | {r['level']} | {r['algo']} | {r['overrides']} | "
                f"{r['loop_config']['total_steps']:,} | "
                f"{cell(r)} | "
                f"{r['best_mean_normalized']:.1f} | {r['final_q_mean']:.3g} |"
            )
    for env, level in envs_levels:
        runs = {a: metrics[(env, level, a)] for a in algos if (env, level, a) in metrics}
        if runs:
            png = f"{env}-{level}.png"
            plots.learning_curve(
                runs,
                os.path.join(OUT, png),
                metric="eval/normalized",
                title=f"{env}-{level}",
                bounds=row_bounds[(env, level)],
                reference={"random": 0.0, "expert": 100.0},
            )
            lines.append(f"\n![{env}-{level}](offline/{png})")
        if "TD3-CVAE" in runs and "cvae/recon" in runs["TD3-CVAE"]:
            png = f"{env}-{level}-cvae_recon.png"
            plots.learning_curve(
                {"TD3-CVAE": runs["TD3-CVAE"]},
                os.path.join(OUT, png),
                metric="cvae/recon",
                title=f"{env}-{level}: CVAE reconstruction (CVAE phase, then frozen)",
                bounds=(0.0, None),  # a mean squared error
            )
            lines.append(f"\n![{env}-{level} CVAE](offline/{png})")
    lines += [
        "",
        "## Runs",
        "",
        "| run | seeds | updates | hidden | wall s (incl. compile) |",
        "|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['env']}-{r['level']}-{r['algo']} | {r['seeds']} | {r['loop_config']['total_steps']:,} | "
            f"{r['agent_config'].get('hidden')} | {r['wall_s']:.0f} |"
        )
    if records:
        lines += ["", "## Provenance (last run)", "", records[-1]["provenance"]]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(RESULTS, "offline.md"), "w") as f:
        f.write(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="inverted_double_pendulum")
    parser.add_argument("--levels", default=",".join(LEVELS))
    parser.add_argument("--algos", default=",".join(ALGOS))
    parser.add_argument(
        "--steps", type=int, default=50_000, help="TD3 / BC updates per run (pre-training apart)"
    )
    parser.add_argument(
        "--cvae-epochs", type=float, default=30.0, help="TD3-CVAE: CVAE passes over the dataset"
    )
    parser.add_argument(
        "--cvae-hidden", type=int, nargs="+", default=[256, 256], help="TD3-CVAE: CVAE layers"
    )
    parser.add_argument("--evals", type=int, default=10, help="evaluations per run")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="agent Config override for every algorithm run (a probe: needs --tag)",
    )
    parser.add_argument("--tag", default="", help="suffix of the records of a probe run")
    parser.add_argument("--summary", action="store_true", help="only rebuild offline.md")
    args = parser.parse_args()
    args.overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        args.overrides[key] = json.loads(value)  # numbers, true/false, "strings"
    if args.overrides and not args.tag:
        parser.error("--set makes a probe run: give it a --tag (its records stay out of the table)")
    if not args.summary:
        from purerl import experts

        for level in args.levels.split(","):
            dataset = experts.load_or_generate(f"{args.env}-{level}")
            heldout = None
            if any(ALGOS[a][0] == "qsarsa" for a in args.algos.split(",")):
                # same behaviour policy, fresh rollouts (seed 1): trajectories never trained on
                size = None if level == "medium-replay" else 50_000
                heldout = experts.generate_dataset(
                    experts.get_expert(args.env), level, size, seed=1
                )
            for label in args.algos.split(","):
                run_one(args.env, level, label, args, dataset, heldout)
    print(summary())


if __name__ == "__main__":
    main()
