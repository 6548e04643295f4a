"""WARP (Rame et al. 2024) on the toy RLHF world: claims P1-P7 of the research notes (sec. 6.3).

    python -m benchmarks.alignment_warp --seeds 3 --steps 400
    python -m benchmarks.alignment_warp --summary   # rebuild results/alignment_warp.md + PNGs
    python -m benchmarks.alignment_warp --quick /tmp/q --seeds 1 --steps 10 --eval-every 5 \
        --eval-prompts 16 --batch 4 --warp-steps 5 5          # smoke run

Reward: the single proxy RM ``_alignment.proxy(world)`` (as in the paper); the gold reward is always
reported next to it. Every evaluation is ``policy_gradient.evaluate`` on the first
``--eval-prompts`` of ``world.eval_prompts``: proxy reward, gold reward and the analytic
``KL(pi || pi_sft)`` of one sample per prompt at the RL temperature.

1. **P1 / P2** (one compile): REINFORCE/RLOO with an SFT anchor, ``beta`` in {0, 1e-3, 1e-2, 0.1}
   (``--seeds`` runs each), and with the EMA anchor (``beta = 0.1, mu = 0.01``, ``2 x --seeds`` runs,
   which double as the SLERP pairs). ``beta`` and ``mu`` are traced: every run is
   ``RLConfig(anchor="ema", ema_rate=mu)`` inside one ``vmap``, and ``mu = 0`` *is* the SFT anchor
   (the anchor starts at ``theta_sft`` and ``(1 - 0) a + 0 b = a`` exactly). Each evaluation row
   evaluates the policy and its anchor on the same prompts and key (P2: ``theta_ema`` vs ``theta``).
2. **P3 / P4**: EMA runs ``(0, 1), (2, 3), ..`` (differing only in seed) -> ``warp.slerp`` and
   ``core.tree.lerp`` over ``lambda``, full-weight SLERP (``init = 0``), ``warp.task_vector_cosines``.
3. **P5**: ``core.tree.lerp(sft, slerp_0.5, eta)`` (LITI) over ``eta`` against the two runs' RL trajectories.
4. **P6**: ``warp.slerp_uniform`` (eq. 26) of ``M`` in {1, 2, 3, 4} of the EMA runs (``P6_DRAWS``
   random subsets in random order per ``M``), then the LITI front ``lerp(sft, merge, eta)`` over
   ``eta``; and the same 4 runs merged in ``P6_DRAWS`` orders (the merge-order spread).
5. **P7**: ``pipeline.run_warp`` (``--warp-steps``, ``M = 2``, ``eta = 0.3``): per-iteration LITI fronts.

Merged / interpolated weights are all evaluated with one sampling key (common random numbers).

Learning rate: ``--lr 3e-4`` by default, not the library's 1e-3. At 1e-3 and T = 400, 8 of the 9
SFT-anchor runs with beta <= 0.01, 2 of the 6 EMA runs and every WARP merge end collapsed on the
proxy's argmax response (KL ~70 nats, one deterministic answer), so the merges of P3-P7 combine
collapsed policies; that run is kept as the record ``warp_lr1e-3`` (``--lr 1e-3 --name
warp_lr1e-3``) and summarised after the main one.

**Hypervolume** of a set of points ``(KL_i, R_i)`` (maximising ``-KL`` and ``R``) w.r.t. the
reference point ``(KL_REF, R_sft)``: the area of ``{(k, r): R_sft <= r <= R_i, KL_i <= k <= KL_REF
for some i}`` = ``integral_0^KL_REF max(0, max{R_i : KL_i <= k} - R_sft) dk``. Points beyond
``KL_REF`` count for nothing; ``R_sft`` is the SFT policy's reward (proxy, resp. gold) on the common
key, so only improvements over SFT count. Units: nats x reward.

The record is ``results/alignment/warp.json``; ``summary()`` returns the markdown section and writes
``results/alignment_warp.md`` and ``results/alignment/warp_{p1,slerp,fronts}.png``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks import _alignment as A

NAME = "warp"
ALT_NAME = "warp_lr1e-3"  # the same benchmark at the library's default lr (collapse regime)
KL_REF = 10.0  # nats: the reference KL of every hypervolume (fixed; see the module docstring)
SFT_BETAS = (0.0, 1e-3, 1e-2, 0.1)
EMA_BETA, EMA_MU = 0.1, 0.01
LAMBDAS = (0.0, 0.25, 0.5, 0.75, 1.0)
ETAS = (0.0, 0.1, 0.3, 0.5, 0.8, 1.0)
P6_MS = (1, 2, 3, 4)  # runs merged by uniform SLERP (WARP Fig. 4b)
P6_DRAWS = 3  # subsets per M, and orders of the same 4 runs
EVAL_SEED = 12345  # the common sampling key of every CRN evaluation
METRICS = ("eval/reward", "eval/gold", "eval/kl_sft", "eval/length", "eval/spurious")


def _label(beta: float, mu: float) -> str:
    return f"EMA β={beta:g} μ={mu:g}" if mu > 0 else f"SFT β={beta:g}"


# ----------------------------------------------------------------------------- front geometry


def hypervolume_interp(kl, reward, ref_kl: float, ref_reward: float, num: int = 2001) -> float:
    """``_alignment.hypervolume`` of a trajectory whose front is linearly interpolated between its points
    (the policy moves continuously between two evaluations; a point beyond ``ref_kl`` still shapes
    the segment that crosses it): ``integral_0^ref_kl max(0, f(k) - ref_reward) dk`` with ``f`` the
    running-max front, interpolated, held flat after the last point and 0 before the first."""
    kl = np.asarray(kl, np.float64).ravel()
    r = np.asarray(reward, np.float64).ravel()
    ok = np.isfinite(kl) & np.isfinite(r)
    order = np.argsort(kl[ok])
    k, best = kl[ok][order], np.maximum.accumulate(r[ok][order])
    grid = np.linspace(0.0, ref_kl, num)
    f = np.interp(grid, k, best)
    f = np.where(grid < k[0], ref_reward, f)
    gain = np.maximum(f - ref_reward, 0.0)
    return float(np.sum((gain[1:] + gain[:-1]) * np.diff(grid)) / 2)


def front_at(kl, reward, grid) -> np.ndarray:
    """The front ``max{R_i : KL_i <= k}`` linearly interpolated at ``grid``; NaN outside the
    points' KL range."""
    kl = np.asarray(kl, np.float64).ravel()
    r = np.asarray(reward, np.float64).ravel()
    ok = np.isfinite(kl) & np.isfinite(r)
    order = np.argsort(kl[ok])
    k, best = kl[ok][order], np.maximum.accumulate(r[ok][order])
    grid = np.asarray(grid, np.float64)
    out = np.interp(grid, k, best)
    return np.where((grid >= k[0]) & (grid <= k[-1]), out, np.nan)


def chord_checks(eta, kl, reward) -> tuple[int, int, int]:
    """At interior ``eta``: how many rewards lie on/above the chord between the endpoints
    (concave-like) and how many KLs on/below it (convex-like); and the number of interior points."""
    eta, kl, reward = (np.asarray(x, np.float64) for x in (eta, kl, reward))
    t = (eta - eta[0]) / (eta[-1] - eta[0])
    inner = slice(1, -1)
    r_chord = reward[0] + t * (reward[-1] - reward[0])
    k_chord = kl[0] + t * (kl[-1] - kl[0])
    return (
        int(np.sum(reward[inner] >= r_chord[inner])),
        int(np.sum(kl[inner] <= k_chord[inner])),
        len(eta) - 2,
    )


# ----------------------------------------------------------------------------- the runs


def run(args) -> dict:
    import jax
    import jax.numpy as jnp

    from purerl.alignment import pipeline, warp
    from purerl.alignment import policy_gradient as pg
    from purerl.core.tree import lerp

    t0 = time.perf_counter()
    timings = {}
    w = A.world()
    timings["world_s"] = w.seconds
    A.log(t0, f"world built ({w.seconds:.1f} s)")
    t = time.perf_counter()
    proxy = A.proxy(w)
    jax.block_until_ready(proxy)
    timings["proxy_s"] = time.perf_counter() - t
    A.log(t0, f"proxy RM trained ({timings['proxy_s']:.1f} s)")
    reward_fn = A.rm_reward_fn(w, proxy)
    prompts = np.asarray(w.eval_prompts[: args.eval_prompts])

    def rl_config(beta, mu):  # mu = 0: the SFT anchor (the anchor never moves)
        return pg.RLConfig(beta=beta, anchor="ema", ema_rate=mu, batch_size=args.batch,
                           num_samples=args.samples, learning_rate=args.lr, log_kl_sft=False)  # fmt: skip

    base = rl_config(EMA_BETA, EMA_MU)
    eval_key = jax.random.key(EVAL_SEED)

    @jax.jit
    def evaluate(params):
        return pg.evaluate(base, w.lm_config, w.task, reward_fn, params, w.sft, prompts, eval_key)

    def crn(params) -> dict:
        return {k: float(v) for k, v in evaluate(params).items()}

    sft_eval = crn(w.sft)
    A.log(t0, f"SFT: {sft_eval}")

    # ---------------------------------------------------------------- P1 / P2: one compile
    seeds = args.seeds
    rows = [(beta, 0.0, s) for beta in SFT_BETAS for s in range(seeds)]
    rows += [(EMA_BETA, EMA_MU, s) for s in range(2 * seeds)]
    betas = jnp.asarray([r[0] for r in rows], jnp.float32)
    mus = jnp.asarray([r[1] for r in rows], jnp.float32)
    base_key = jax.random.key(args.seed)
    keys = jax.vmap(lambda s: jax.random.fold_in(base_key, s))(jnp.asarray([r[2] for r in rows]))

    def make(beta, mu):
        cfg = rl_config(beta, mu)
        algo = pg.make(cfg, w.lm_config, w.task, reward_fn)
        ev = pg.make_evaluate(cfg, w.lm_config, w.task, reward_fn, prompts=prompts)

        def evaluate_both(state, k):  # the policy and its anchor, same prompts and key (P2)
            out = dict(ev(state, k))
            anchor = ev(state._replace(params=state.anchor_params), k)
            out.update({"anchor/" + name.split("/", 1)[1]: v for name, v in anchor.items()})
            return out

        return algo, evaluate_both

    desc = f"P1 sweep, {len(rows)} runs x {args.steps} updates"
    config = A.loop_config(args.steps, args.eval_every)
    (states, metrics), timings["p1_compile_s"], timings["p1_run_s"] = A.rl_runs(
        desc, make, keys, (betas, mus), (w.sft, w.sft), config
    )
    metrics = A.host(metrics)

    p1 = {}
    for beta, mu in [(b, 0.0) for b in SFT_BETAS] + [(EMA_BETA, EMA_MU)]:
        idx = [i for i, r in enumerate(rows) if r[0] == beta and r[1] == mu]
        p1[_label(beta, mu)] = {
            "beta": beta,
            "mu": mu,
            "run_index": idx,
            "metrics": {
                k: v[idx]
                for k, v in metrics.items()
                if k.startswith(("eval/", "anchor/", "loop/", "reward/", "kl/"))
            },
        }
    for name, entry in p1.items():
        last = {k: float(np.mean(v[:, -1])) for k, v in entry["metrics"].items() if "eval/" in k}
        A.log(t0, f"  {name}: final {last}")

    # P2 at the end, on the common key: theta vs theta_ema of every EMA run.
    t = time.perf_counter()
    ema_idx = p1[_label(EMA_BETA, EMA_MU)]["run_index"]
    final = [A.member(states.params, i) for i in ema_idx]
    anchors = [A.member(states.anchor_params, i) for i in ema_idx]
    final_evals = [crn(p) for p in final]
    p2 = {"policy": final_evals, "ema": [crn(p) for p in anchors]}

    # ---------------------------------------------------------------- P3 / P4 / P5: merges
    zeros = jax.tree.map(jnp.zeros_like, w.sft)
    pairs = []
    for j in range(seeds):
        th1, th2 = final[2 * j], final[2 * j + 1]
        stacked = A.stack_trees([th1, th2])
        cos_task = warp.task_vector_cosines(w.sft, stacked)
        cos_full = warp.task_vector_cosines(zeros, stacked)
        flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])  # noqa: E731
        d1, d2 = flat(th1) - flat(w.sft), flat(th2) - flat(w.sft)
        f1, f2 = flat(th1), flat(th2)
        entry = {
            "runs": [ema_idx[2 * j], ema_idx[2 * j + 1]],
            "cos_task_leaf": {
                jax.tree_util.keystr(p): float(c[0, 1])
                for p, c in jax.tree_util.tree_leaves_with_path(cos_task)
            },
            "cos_full_leaf": {
                jax.tree_util.keystr(p): float(c[0, 1])
                for p, c in jax.tree_util.tree_leaves_with_path(cos_full)
            },
            "cos_task_global": float(d1 @ d2 / (np.linalg.norm(d1) * np.linalg.norm(d2))),
            "cos_full_global": float(f1 @ f2 / (np.linalg.norm(f1) * np.linalg.norm(f2))),
            "task_norms": [float(np.linalg.norm(d1)), float(np.linalg.norm(d2))],
            "lambda": list(LAMBDAS),
            "slerp": [],
            "lerp": [],
            "slerp_weights": [],
            "dist_wslerp_lerp": [],
            "dist_slerp_lerp": [],
        }
        for lam in LAMBDAS:
            s = warp.slerp(w.sft, th1, th2, lam)
            li = lerp(th1, th2, lam)
            sw = warp.slerp(zeros, th1, th2, lam)  # mergekit-style SLERP of full weights
            entry["slerp"].append(crn(s))
            entry["lerp"].append(crn(li))
            entry["slerp_weights"].append(crn(sw))
            entry["dist_slerp_lerp"].append(float(np.linalg.norm(flat(s) - flat(li))))
            entry["dist_wslerp_lerp"].append(float(np.linalg.norm(flat(sw) - flat(li))))
        merged = warp.slerp(w.sft, th1, th2, 0.5)
        entry["eta"] = list(ETAS)
        entry["liti"] = [crn(lerp(w.sft, merged, eta)) for eta in ETAS]
        pairs.append(entry)
        s5, l5 = entry["slerp"][2], entry["lerp"][2]
        A.log(
            t0,
            f"  pair {j}: cos(task) median |.| "
            f"{np.median(np.abs(list(entry['cos_task_leaf'].values()))):.3f}, "
            f"SLERP.5 r={s5['eval/reward']:.3f} kl={s5['eval/kl_sft']:.2f}, "
            f"LERP.5 r={l5['eval/reward']:.3f} kl={l5['eval/kl_sft']:.2f}, "
            f"ends r={entry['slerp'][0]['eval/reward']:.3f}/{entry['slerp'][-1]['eval/reward']:.3f}",
        )
    timings["merges_s"] = time.perf_counter() - t
    A.log(t0, f"P2-P5 evaluations done ({timings['merges_s']:.1f} s)")

    # ---------------------------------------------------------------- P6: more runs merged
    t = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    ms = [m for m in P6_MS if m <= len(final)]

    def liti_front(runs: list[int]) -> list[dict]:
        merged = warp.slerp_uniform(w.sft, A.stack_trees([final[i] for i in runs]))
        return [crn(lerp(w.sft, merged, eta)) for eta in ETAS]

    p6 = {"m": ms, "eta": list(ETAS), "subsets": {}, "orders": []}
    for m in ms:
        draws = [[int(i) for i in rng.permutation(len(final))[:m]] for _ in range(P6_DRAWS)]
        p6["subsets"][str(m)] = [{"runs": r, "liti": liti_front(r)} for r in draws]
        hvs = [
            _hv(
                [x["eval/kl_sft"] for x in e["liti"]],
                [x["eval/reward"] for x in e["liti"]],
                sft_eval["eval/reward"],
            )
            for e in p6["subsets"][str(m)]
        ]
        A.log(t0, f"  P6 M={m}: runs {draws}, HV_proxy {np.round(hvs, 2)}")
    m_max = max(ms)
    for o in range(P6_DRAWS if m_max > 1 else 0):
        order = [(o + k) % m_max for k in range(m_max)]  # rotations of runs 0 .. M-1
        p6["orders"].append({"runs": order, "liti": liti_front(order)})
    timings["p6_s"] = time.perf_counter() - t
    A.log(t0, f"P6 merges of M in {ms} runs done ({timings['p6_s']:.1f} s)")

    # ---------------------------------------------------------------- P7: iterated WARP
    t = time.perf_counter()
    warp_config = pipeline.WarpConfig(
        steps=tuple(args.warp_steps),
        num_runs=2,
        liti_eta=0.3,
        rl=base,
        eval_every=args.eval_every,
        front_etas=ETAS,
        num_eval_prompts=args.eval_prompts,
    )
    result = pipeline.run_warp(
        jax.random.fold_in(base_key, 10_000),
        w.sft,
        warp_config,
        w.lm_config,
        w.task,
        reward_fn,
        eval_prompts=prompts,
    )
    jax.block_until_ready(result.front)
    timings["warp_s"] = time.perf_counter() - t
    p7 = {
        "steps": list(args.warp_steps),
        "num_runs": 2,
        "liti_eta": 0.3,
        "eta": list(ETAS),
        "iteration_fronts": [A.host(f) for f in result.iteration_fronts],
        "front": A.host(result.front),
        "run_metrics": [
            {k: v for k, v in A.host(m).items() if k.startswith(("eval/", "loop/"))}
            for m in result.run_metrics
        ],
        # the shared SFT point on run_warp's own key (its fronts use result.eval_key)
        "sft_on_warp_key": {
            k: float(v)
            for k, v in pg.evaluate(
                base, w.lm_config, w.task, reward_fn, w.sft, w.sft, prompts, result.eval_key
            ).items()
        },
    }
    for i, f in enumerate(result.iteration_fronts):
        A.log(
            t0,
            f"  WARP iteration {i + 1}: front r={np.round(np.asarray(f['eval/reward']), 3)} "
            f"kl={np.round(np.asarray(f['eval/kl_sft']), 2)}",
        )
    A.log(t0, f"P7 run_warp {args.warp_steps} done ({timings['warp_s']:.1f} s)")
    timings["total_s"] = time.perf_counter() - t0

    return {
        "config": {
            "seeds": seeds,
            "ema_runs": 2 * seeds,
            "steps": args.steps,
            "eval_every": args.eval_every,
            "batch_size": args.batch,
            "num_samples": args.samples,
            "eval_prompts": args.eval_prompts,
            "learning_rate": base.learning_rate,
            "temperature": base.temperature,
            "baseline": base.baseline,
            "estimator": base.estimator,
            "sft_betas": list(SFT_BETAS),
            "ema": [EMA_BETA, EMA_MU],
            "kl_ref": KL_REF,
            "seed": args.seed,
            "eval_seed": EVAL_SEED,
            "warp_steps": list(args.warp_steps),
        },
        "timings": timings,
        "sft": sft_eval,
        "p1": p1,
        "p2": p2,
        "pairs": pairs,
        "p6": p6,
        "p7": p7,
    }


# ----------------------------------------------------------------------------- the summary


def _hv(kl, r, ref):
    return A.hypervolume(kl, r, KL_REF, ref)


def _plots(rec: dict) -> list[str]:
    plt = A.pyplot()

    names = []
    sft = rec["sft"]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    # P1: KL vs reward curves (mean over seeds), proxy and gold.
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for c, (label, e) in enumerate(rec["p1"].items()):
        m = e["metrics"]
        kl = np.mean(m["eval/kl_sft"], 0)
        for ax, key in zip(axes, ("eval/reward", "eval/gold"), strict=True):
            ax.plot(kl, np.mean(m[key], 0), "o-", ms=3, color=colors[c], label=label)
            if e["mu"] > 0:
                ax.plot(
                    np.mean(m["anchor/kl_sft"], 0),
                    np.mean(m[key.replace("eval/", "anchor/")], 0),
                    "s--",
                    ms=3,
                    color=colors[c],
                    alpha=0.7,
                    label="its EMA weights θ_ema" if key == "eval/reward" else None,
                )
    for ax, key, title in zip(
        axes, ("eval/reward", "eval/gold"), ("proxy RM reward", "gold reward"), strict=True
    ):
        ax.axhline(sft[key], color="gray", lw=0.8, ls=":")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel("KL(π ‖ π_sft) [nats], symlog")
        ax.set_ylabel(title)
        ax.set_title(f"P1: {title} vs KL (mean over seeds)")
    axes[0].legend(fontsize=7)
    A.save_figure(fig, "warp_p1.png", 110)
    names.append("warp_p1.png")

    # P3: SLERP vs LERP over lambda.
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    lam = np.asarray(rec["pairs"][0]["lambda"])
    for c, (kind, lab) in enumerate(
        (("slerp", "SLERP (task vectors)"), ("lerp", "LERP"), ("slerp_weights", "SLERP (weights)"))
    ):
        for ax, key in zip(axes, ("eval/reward", "eval/gold", "eval/kl_sft"), strict=True):
            vals = np.asarray([[p[kind][i][key] for i in range(len(lam))] for p in rec["pairs"]])
            mean, half = A.mean_ci(vals)
            ax.plot(lam, mean, "o-", color=colors[c], label=lab)
            if vals.shape[0] > 1:
                ax.fill_between(lam, mean - half, mean + half, color=colors[c], alpha=0.15)
    for ax, title in zip(axes, ("proxy reward", "gold reward", "KL to SFT"), strict=True):
        ax.set_xlabel("λ")
        ax.set_title(f"P3: {title} (mean, 95% CI over pairs)", fontsize=9)
    axes[0].legend(fontsize=7)
    A.save_figure(fig, "warp_slerp.png", 110)
    names.append("warp_slerp.png")

    # P5 / P7: LITI fronts per iteration, the final front, the EMA RL trajectory, the P5 fronts.
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    p7 = rec["p7"]
    ema = rec["p1"][_label(EMA_BETA, EMA_MU)]["metrics"]
    for ax, key in zip(axes, ("eval/reward", "eval/gold"), strict=True):
        ax.plot(
            np.mean(ema["eval/kl_sft"], 0),
            np.mean(ema[key], 0),
            "k.-",
            alpha=0.6,
            label="REINFORCE EMA trajectory (P1 mean)",
        )
        for j, p in enumerate(rec["pairs"]):
            ax.plot(
                [x["eval/kl_sft"] for x in p["liti"]],
                [x[key] for x in p["liti"]],
                "x:",
                color="gray",
                alpha=0.7,
                label="P5 LITI(sft, SLERP of a pair)" if j == 0 else None,
            )
        for i, f in enumerate(p7["iteration_fronts"]):
            ax.plot(
                f["eval/kl_sft"], f[key], "o-", color=colors[i], label=f"WARP iteration {i + 1}"
            )
        ax.plot(
            p7["front"]["eval/kl_sft"],
            p7["front"][key],
            "s--",
            color="k",
            label="WARP final front (from θ_sft)",
        )
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel("KL(π ‖ π_sft) [nats], symlog")
    axes[0].set_title("P5/P7: LITI fronts, proxy reward")
    axes[1].set_title("P5/P7: LITI fronts, gold reward")
    axes[0].legend(fontsize=7)
    A.save_figure(fig, "warp_fronts.png", 110)
    names.append("warp_fronts.png")

    # P6: LITI fronts of uniform SLERPs of M runs (mean over the subsets of each M).
    if "p6" in rec:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        p6 = rec["p6"]
        for ax, key in zip(axes, ("eval/reward", "eval/gold"), strict=True):
            for c, m in enumerate(p6["m"]):
                es = p6["subsets"][str(m)]
                kl = np.mean([[x["eval/kl_sft"] for x in e["liti"]] for e in es], 0)
                val = np.mean([[x[key] for x in e["liti"]] for e in es], 0)
                ax.plot(kl, val, "o-", color=colors[c], label=f"M = {m}")
            ax.set_xlabel("KL(π ‖ π_sft) [nats]")
        axes[0].set_title("P6: LITI(sft, SLERP of M runs), proxy (mean over subsets)", fontsize=9)
        axes[1].set_title("P6: gold reward", fontsize=9)
        axes[0].legend(fontsize=7)
        A.save_figure(fig, "warp_p6.png", 110)
        names.append("warp_p6.png")
    return names


def _report(rec: dict) -> tuple[list[str], list[str], list[str]]:
    """``(head, tables, claims)`` markdown lines of one record."""
    cfg, sft = rec["config"], rec["sft"]
    kl_ref = cfg["kl_ref"]
    assert kl_ref == KL_REF, "the record was made with another KL_REF"
    r0, g0 = sft["eval/reward"], sft["eval/gold"]
    # Evaluation noise: the SFT-anchor runs' anchor stream evaluates theta_sft at every row with the
    # loop's key (distinct per seed and row): the SD of a 256-prompt mean under independent keys.
    sft_rows = rec["p1"][_label(0.0, 0.0)]["metrics"]
    sd_r = float(np.std(np.asarray(sft_rows["anchor/reward"], np.float64), ddof=1))
    sd_g = float(np.std(np.asarray(sft_rows["anchor/gold"], np.float64), ddof=1))
    out = [
        rec["provenance"].rstrip(),
        f"- wall time: {rec['timings']['total_s']:.0f} s in all "
        + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in rec["timings"].items() if k != "total_s"),
        "",
        f"Toy RLHF world (`benchmarks/_alignment.py`), reward = the single proxy RM; REINFORCE/RLOO, "
        f"{cfg['batch_size']} prompts x {cfg['num_samples']} samples per update, lr "
        f"{cfg['learning_rate']:g}, τ = {cfg['temperature']}, k1 KL in the reward, T = "
        f"{cfg['steps']} updates, evaluation every {cfg['eval_every']} on {cfg['eval_prompts']} "
        f"held-out prompts (proxy reward, gold reward, analytic KL(π‖π_sft) in nats). SFT anchors: "
        f"{cfg['seeds']} seeds per β; EMA anchor (β = {cfg['ema'][0]}, μ = {cfg['ema'][1]}): "
        f"{cfg['ema_runs']} seeds. SFT policy on the common key: proxy {r0:.3f}, gold {g0:.3f}. "
        f"Mean ± 95% t-CI over seeds. Evaluation noise (SD of the SFT policy's mean over the "
        f"{cfg['eval_prompts']} prompts under independent keys, {np.asarray(sft_rows['anchor/reward']).size} "
        f"evaluations): proxy {sd_r:.3f}, gold {sd_g:.3f}; comparisons on the common key are "
        "less noisy than that.",
        "",
        f"**Hypervolume (HV)** of a set of (KL, R) points: the area dominated in the (−KL, R) plane "
        f"w.r.t. the reference point (KL = {kl_ref:g} nats, R = the SFT policy's reward), i.e. "
        f"∫₀^{kl_ref:g} max(0, max{{R_i : KL_i ≤ k}} − R_sft) dk; points beyond {kl_ref:g} nats "
        f"count for nothing. HV_proxy uses the proxy reward, HV_gold the gold reward.",
        "",
    ]
    n_head = len(out)

    # ---------------------------------------------------------------- P1
    out += [
        "### P1: EMA anchor vs SFT-anchor β sweep (Fig. 3a/b)",
        "",
        "| run | final proxy | final gold | final KL | peak gold (at KL) | HV_proxy | HV_gold | "
        "HV_proxy interpolated | proxy gain in 2nd half / total |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    hv = {}
    sat = {}
    divergence = []
    for label, e in rec["p1"].items():
        m = {k: np.asarray(v, np.float64) for k, v in e["metrics"].items()}
        r, g, kl = m["eval/reward"], m["eval/gold"], m["eval/kl_sft"]
        hv_p = [_hv(kl[s], r[s], r0) for s in range(r.shape[0])]
        hv_g = [_hv(kl[s], g[s], g0) for s in range(r.shape[0])]
        hv_i = [hypervolume_interp(kl[s], r[s], KL_REF, r0) for s in range(r.shape[0])]
        hv[label] = (np.asarray(hv_p), np.asarray(hv_g), np.asarray(hv_i))
        mid = (r.shape[1] - 1) // 2
        rm = r.mean(0)
        sat[label] = float((rm[-1] - rm[mid]) / max(rm[-1] - rm[0], 1e-9))
        gm, klm = g.mean(0), kl.mean(0)
        peak = int(np.argmax(gm))
        out.append(
            f"| {label} | {A.fmt(r[:, -1])} | {A.fmt(g[:, -1])} | {A.fmt(kl[:, -1], 2)} | "
            f"{gm[peak]:.3f} ({klm[peak]:.2f}) | {A.fmt(hv_p, 2)} | {A.fmt(hv_g, 2)} | {A.fmt(hv_i, 2)} | "
            f"{sat[label]:.2f} |"
        )
        if peak < len(gm) - 1 and gm[-1] < gm[peak] - 0.05 and rm[-1] > rm[peak] + 0.05:
            divergence.append(
                f"{label}: from KL {klm[peak]:.2f} to {klm[-1]:.2f} the proxy rises "
                f"{rm[peak]:.3f} → {rm[-1]:.3f} while gold falls {gm[peak]:.3f} → {gm[-1]:.3f}"
            )
    ema_label = _label(cfg["ema"][0], cfg["ema"][1])
    sft_labels = [k for k in rec["p1"] if k != ema_label]
    final_kl = {
        k: float(np.mean(np.asarray(rec["p1"][k]["metrics"]["eval/kl_sft"])[:, -1]))
        for k in rec["p1"]
    }
    ema_best = all(hv[ema_label][0].mean() > hv[k][0].mean() for k in sft_labels)
    lo_ema = hv[ema_label][0].mean() - np.nan_to_num(A.mean_ci(hv[ema_label][0])[1])
    separated = all(
        lo_ema > hv[k][0].mean() + np.nan_to_num(A.mean_ci(hv[k][0])[1]) for k in sft_labels
    )
    ema_best_interp = all(hv[ema_label][2].mean() > hv[k][2].mean() for k in sft_labels)
    lo_ema_i = hv[ema_label][2].mean() - np.nan_to_num(A.mean_ci(hv[ema_label][2])[1])
    separated_i = all(
        lo_ema_i > hv[k][2].mean() + np.nan_to_num(A.mean_ci(hv[k][2])[1]) for k in sft_labels
    )
    ema_best_gold = all(hv[ema_label][1].mean() > hv[k][1].mean() for k in sft_labels)
    b0 = _label(0.0, 0.0)
    explodes = final_kl[b0] > kl_ref  # leaves the window in which fronts are compared
    b01 = _label(0.1, 0.0)
    saturates = sat[b01] < 0.2
    out += [
        "",
        "HV_proxy interpolated: the same area with each trajectory's front linearly interpolated "
        "between its evaluations (the step HV favours runs with many evaluations inside the "
        "window). Last column: (R_T − R_{T/2}) / (R_T − R_0) of the mean proxy curve; < 0.2 is read as "
        "saturated. The EMA rows are the policy θ; its anchor θ_ema is P2.",
        "",
    ]
    # Do the anchors reach different fronts, or move along one curve? EMA's mean front minus each
    # SFT run's mean front on their common KL range (interpolated, as in front_at).
    em_kl = np.mean(rec["p1"][ema_label]["metrics"]["eval/kl_sft"], 0)
    em_r = np.mean(rec["p1"][ema_label]["metrics"]["eval/reward"], 0)
    shape = []
    for k in sft_labels:
        o_kl = np.mean(rec["p1"][k]["metrics"]["eval/kl_sft"], 0)
        o_r = np.mean(rec["p1"][k]["metrics"]["eval/reward"], 0)
        lo, hi = max(em_kl.min(), o_kl.min()), min(em_kl.max(), o_kl.max())
        grid = np.linspace(lo, hi, 50)
        d = front_at(em_kl, em_r, grid) - front_at(o_kl, o_r, grid)
        shape.append(f"{k} {np.nanmean(d):+.3f} on [{lo:.1f}, {hi:.1f}]")
    out += [
        "Same curve or different fronts? Proxy reward of the EMA run's mean front minus each SFT "
        "run's mean front at equal KL (mean over their common KL range): "
        + "; ".join(shape)
        + f" (evaluation noise SD {sd_r:.3f}).",
        "",
    ]

    # ---------------------------------------------------------------- P2
    em = {k: np.asarray(v, np.float64) for k, v in rec["p1"][ema_label]["metrics"].items()}
    n_ema = em["eval/reward"].shape[0]
    hv_pol = [_hv(em["eval/kl_sft"][s], em["eval/reward"][s], r0) for s in range(n_ema)]
    hv_anc = [_hv(em["anchor/kl_sft"][s], em["anchor/reward"][s], r0) for s in range(n_ema)]
    hv_pol_g = [_hv(em["eval/kl_sft"][s], em["eval/gold"][s], g0) for s in range(n_ema)]
    hv_anc_g = [_hv(em["anchor/kl_sft"][s], em["anchor/gold"][s], g0) for s in range(n_ema)]
    # final theta_ema against the policy's own trajectory front at the same KL
    gaps = []
    for s in range(n_ema):
        f = front_at(
            em["eval/kl_sft"][s], em["eval/reward"][s], [rec["p2"]["ema"][s]["eval/kl_sft"]]
        )
        gaps.append(rec["p2"]["ema"][s]["eval/reward"] - f[0])
    pol, anc = rec["p2"]["policy"], rec["p2"]["ema"]
    col = lambda rows, key: np.asarray([x[key] for x in rows])  # noqa: E731
    out += [
        "### P2: EMA weights θ_ema vs policy θ (Fig. 14)",
        "",
        f"{n_ema} EMA-anchor runs. Final weights on the common key, and HV of the whole "
        "trajectory (θ and θ_ema are evaluated on the same prompts and key at every evaluation).",
        "",
        "| weights | final proxy | final gold | final KL | HV_proxy (trajectory) | HV_gold (trajectory) |",
        "|---|---|---|---|---|---|",
        f"| policy θ | {A.fmt(col(pol, 'eval/reward'))} | {A.fmt(col(pol, 'eval/gold'))} | "
        f"{A.fmt(col(pol, 'eval/kl_sft'), 2)} | {A.fmt(hv_pol, 2)} | {A.fmt(hv_pol_g, 2)} |",
        f"| EMA θ_ema | {A.fmt(col(anc, 'eval/reward'))} | {A.fmt(col(anc, 'eval/gold'))} | "
        f"{A.fmt(col(anc, 'eval/kl_sft'), 2)} | {A.fmt(hv_anc, 2)} | {A.fmt(hv_anc_g, 2)} |",
        "",
        f"Final θ_ema's proxy reward minus the policy trajectory's front (max reward at KL ≤ k, "
        f"linearly interpolated) at θ_ema's KL: {A.fmt(gaps)} (> 0: θ_ema lies above the policy's "
        "front).",
        "",
    ]
    p2_pass = [float(np.mean(hv_anc)) >= float(np.mean(hv_pol)), float(np.nanmean(gaps)) >= 0]
    hv_diff = np.asarray(hv_anc) - np.asarray(hv_pol)
    diff_half = float(np.nan_to_num(A.mean_ci(hv_diff)[1]))
    p2_tie = abs(float(hv_diff.mean())) <= diff_half

    # ---------------------------------------------------------------- P3 / P4
    pairs = rec["pairs"]
    lam = pairs[0]["lambda"]
    i5 = lam.index(0.5)

    def at(kind, i, key):
        return np.asarray([p[kind][i][key] for p in pairs])

    out += [
        "### P3: SLERP vs LERP of two EMA-anchor runs differing only in seed (Fig. 3c, 8)",
        "",
        f"{len(pairs)} pairs (EMA runs (0, 1), (2, 3), ..), all weights on the common key. λ = 0 "
        "and 1 are the two runs; SLERP (weights) is mergekit-style SLERP of full weights.",
        "",
        "| λ | SLERP proxy | LERP proxy | SLERP (weights) proxy | SLERP gold | LERP gold | SLERP KL | "
        "LERP KL |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, lv in enumerate(lam):
        out.append(
            f"| {lv:g} | {A.fmt(at('slerp', i, 'eval/reward'))} | {A.fmt(at('lerp', i, 'eval/reward'))} | "
            f"{A.fmt(at('slerp_weights', i, 'eval/reward'))} | {A.fmt(at('slerp', i, 'eval/gold'))} | "
            f"{A.fmt(at('lerp', i, 'eval/gold'))} | {A.fmt(at('slerp', i, 'eval/kl_sft'), 2)} | "
            f"{A.fmt(at('lerp', i, 'eval/kl_sft'), 2)} |"
        )
    s5, l5 = at("slerp", i5, "eval/reward"), at("lerp", i5, "eval/reward")
    ends = np.maximum(at("slerp", 0, "eval/reward"), at("slerp", len(lam) - 1, "eval/reward"))
    ks5, kl5 = at("slerp", i5, "eval/kl_sft"), at("lerp", i5, "eval/kl_sft")
    c1 = s5 > ends
    c2 = s5 > l5
    c3 = ks5 >= kl5
    out += [
        "",
        f"Per pair at λ = 0.5: SLERP > max(ends) in {int(c1.sum())}/{len(pairs)} "
        f"(mean margin {np.mean(s5 - ends):+.3f}); SLERP > LERP in {int(c2.sum())}/{len(pairs)} "
        f"(mean {np.mean(s5 - l5):+.3f}); KL(SLERP) ≥ KL(LERP) in {int(c3.sum())}/{len(pairs)} "
        f"(mean {np.mean(ks5 - kl5):+.2f} nats).",
        "",
    ]
    p3_checks = [
        bool(np.mean(s5 - ends) > 0),
        bool(np.mean(s5 - l5) > 0),
        bool(np.mean(ks5 - kl5) >= 0),
    ]

    med_task = np.asarray([np.median(np.abs(list(p["cos_task_leaf"].values()))) for p in pairs])
    med_full = np.asarray([np.median(list(p["cos_full_leaf"].values())) for p in pairs])
    g_task = np.asarray([p["cos_task_global"] for p in pairs])
    g_full = np.asarray([p["cos_full_global"] for p in pairs])
    d_w = np.asarray([p["dist_wslerp_lerp"][i5] for p in pairs])
    d_t = np.asarray([p["dist_slerp_lerp"][i5] for p in pairs])
    r_w = at("slerp_weights", i5, "eval/reward")
    norms = np.asarray([p["task_norms"] for p in pairs])
    out += [
        "### P4: task vectors vs full weights (Obs. 4, Fig. 10c, 11)",
        "",
        "| quantity | value (mean ± CI over pairs) |",
        "|---|---|",
        f"| median over leaves of \\|cos(δ₁, δ₂)\\| (task vectors, per leaf) | {A.fmt(med_task)} |",
        f"| cos(δ₁, δ₂) of the whole flattened task vectors | {A.fmt(g_task)} |",
        f"| median over leaves of cos(θ₁, θ₂) (full weights) | {A.fmt(med_full, 4)} |",
        f"| cos(θ₁, θ₂) whole model | {A.fmt(g_full, 4)} |",
        f"| \\|δ₁\\|, \\|δ₂\\| | {A.fmt(norms[:, 0])}, {A.fmt(norms[:, 1])} |",
        f"| ‖SLERP_weights − LERP‖ / ‖SLERP_task − LERP‖ at λ = 0.5 | {A.fmt(d_w / d_t)} |",
        f"| proxy at λ = 0.5: SLERP_weights − LERP (vs SLERP_task − LERP) | "
        f"{A.fmt(r_w - l5)} (vs {A.fmt(s5 - l5)}) |",
        "",
    ]
    p4_checks = [
        bool(np.mean(med_task) < 0.3),
        bool(np.mean(med_full) > 0.99),
        # Fig. 10c is about reward: full-weight SLERP's reward is LERP's (within half of what
        # task-vector SLERP adds over LERP)
        bool(np.mean(np.abs(r_w - l5)) <= 0.5 * np.mean(s5 - l5)),
    ]

    # ---------------------------------------------------------------- P5
    hv_liti, hv_liti_g, hv_traj, hv_traj_g, conc, conv = [], [], [], [], 0, 0
    n_inner = 0
    for p in pairs:
        kl = [x["eval/kl_sft"] for x in p["liti"]]
        hv_liti.append(_hv(kl, [x["eval/reward"] for x in p["liti"]], r0))
        hv_liti_g.append(_hv(kl, [x["eval/gold"] for x in p["liti"]], g0))
        runs = p["runs"]
        trajs = [
            (
                em["eval/kl_sft"][ema_idx_pos],
                em["eval/reward"][ema_idx_pos],
                em["eval/gold"][ema_idx_pos],
            )
            for ema_idx_pos in (
                rec["p1"][ema_label]["run_index"].index(runs[0]),
                rec["p1"][ema_label]["run_index"].index(runs[1]),
            )
        ]
        hv_traj.append(max(_hv(t[0], t[1], r0) for t in trajs))
        hv_traj_g.append(max(_hv(t[0], t[2], g0) for t in trajs))
        a, b, n = chord_checks(p["eta"], kl, [x["eval/reward"] for x in p["liti"]])
        conc, conv, n_inner = conc + a, conv + b, n_inner + n
    eta = pairs[0]["eta"]
    out += [
        "### P5: LITI front (θ_sft → SLERP₀.₅) vs the RL trajectories (Obs. 5, Fig. 4a, 9)",
        "",
        "| η | proxy | gold | KL |",
        "|---|---|---|---|",
    ]
    for i, e in enumerate(eta):
        out.append(
            f"| {e:g} | {A.fmt(at('liti', i, 'eval/reward'))} | {A.fmt(at('liti', i, 'eval/gold'))} | "
            f"{A.fmt(at('liti', i, 'eval/kl_sft'), 2)} |"
        )
    out += [
        "",
        f"HV_proxy: LITI front {A.fmt(hv_liti, 2)} vs the better of the pair's two RL trajectories "
        f"{A.fmt(hv_traj, 2)} (LITI higher in {sum(a > b for a, b in zip(hv_liti, hv_traj, strict=True))}"
        f"/{len(pairs)} pairs); HV_gold: {A.fmt(hv_liti_g, 2)} vs {A.fmt(hv_traj_g, 2)}. "
        f"Interior η with proxy reward on/above the chord between η = 0 and 1 (concave-like): "
        f"{conc}/{n_inner}; with KL on/below its chord (convex-like): {conv}/{n_inner}. "
        f"For comparison, the first WARP iteration of P7 (T = {rec['p7']['steps'][0]} per run, one "
        f"seed) has a LITI front with HV_proxy "
        f"{_hv(rec['p7']['iteration_fronts'][0]['eval/kl_sft'], rec['p7']['iteration_fronts'][0]['eval/reward'], rec['p7']['sft_on_warp_key']['eval/reward']):.2f} "
        f"(merge at KL {np.max(rec['p7']['iteration_fronts'][0]['eval/kl_sft']):.2f}).",
        "",
    ]
    p5_checks = [
        bool(np.mean(hv_liti) > np.mean(hv_traj)),
        conc >= 0.75 * n_inner,
        conv >= 0.75 * n_inner,
    ]

    # ---------------------------------------------------------------- P6
    p6_checks, p6_line = None, None
    if "p6" in rec:  # records made before P6 was measured have none
        p6 = rec["p6"]

        def hv_of(front, key, ref):
            return _hv([x["eval/kl_sft"] for x in front], [x[key] for x in front], ref)

        out += [
            "### P6: uniform SLERP of M runs, then LITI from θ_sft (Fig. 4b, eq. 26)",
            "",
            f"M of the {2 * cfg['seeds']} EMA runs of P1 (β = {EMA_BETA:g}, μ = {EMA_MU:g}), "
            f"{P6_DRAWS} random subsets in random order per M; front over η ∈ "
            f"{{{', '.join(f'{e:g}' for e in p6['eta'])}}}; mean ± 95% CI over the subsets.",
            "",
            "| M | HV_proxy | HV_gold | proxy at η = 1 | gold at η = 1 | KL at η = 1 |",
            "|---|---|---|---|---|---|",
        ]
        hv6 = {}
        for m in p6["m"]:
            es = p6["subsets"][str(m)]
            hv6[m] = np.asarray([hv_of(e["liti"], "eval/reward", r0) for e in es])
            hg = [hv_of(e["liti"], "eval/gold", g0) for e in es]
            end = lambda k, es=es: [e["liti"][-1][k] for e in es]  # noqa: E731
            out.append(
                f"| {m} | {A.fmt(hv6[m], 2)} | {A.fmt(hg, 2)} | {A.fmt(end('eval/reward'))} | "
                f"{A.fmt(end('eval/gold'))} | {A.fmt(end('eval/kl_sft'), 2)} |"
            )
        means = [float(hv6[m].mean()) for m in p6["m"]]
        increasing = bool(np.all(np.diff(means) > 0))
        order_hv = np.asarray([hv_of(e["liti"], "eval/reward", r0) for e in p6["orders"]])
        m_max = max(p6["m"])
        sd_order = float(np.std(order_hv, ddof=1)) if order_hv.size > 1 else float("nan")
        sd_subset = float(np.std(hv6[m_max], ddof=1)) if hv6[m_max].size > 1 else float("nan")
        small = bool(sd_order <= sd_subset)
        out += [
            "",
            f"The same {m_max} runs merged in {len(order_hv)} orders (rotations): HV_proxy "
            f"{', '.join(f'{x:.2f}' for x in order_hv)} (SD {sd_order:.3f}; SD over the "
            f"M = {m_max} subsets {sd_subset:.3f}).",
            "",
        ]
        p6_checks = [increasing, small]
        p6_line = (
            f"- **P6 {A.verdict(p6_checks)}**: HV_proxy increases with M: "
            f"{'yes' if increasing else 'no'} ({', '.join(f'M={m} {x:.2f}' for m, x in zip(p6['m'], means, strict=True))}); "
            f"merge-order SD small (≤ the SD over subsets of the same M): "
            f"{'yes' if small else 'no'} ({sd_order:.3f} vs {sd_subset:.3f})."
        )

    # ---------------------------------------------------------------- P7
    p7 = rec["p7"]
    fronts = p7["iteration_fronts"]
    sft_w = p7["sft_on_warp_key"]
    out += [
        f"### P7: iterated WARP, T = {tuple(p7['steps'])}, M = {p7['num_runs']}, "
        f"η = {p7['liti_eta']} (Obs. 6, Fig. 4c)",
        "",
        "Iteration i's front is LITI from its init θ_init^i towards its merge θ_slerp^i over η "
        "(η = 0 is θ_init^i); the final front is LITI from θ_sft towards θ_slerp^I. One run "
        "(seed 0), all points on run_warp's common key.",
        "",
        "| front | KL range | proxy at η = 1 | gold at η = 1 | max proxy | max gold | HV_proxy | "
        "HV_gold |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = [(f"iteration {i + 1}", f) for i, f in enumerate(fronts)] + [
        ("final (from θ_sft)", p7["front"])
    ]
    hv7, max7 = [], []
    for name, f in rows:
        kl, r, g = (
            np.asarray(f[k], np.float64) for k in ("eval/kl_sft", "eval/reward", "eval/gold")
        )
        h, hg = _hv(kl, r, sft_w["eval/reward"]), _hv(kl, g, sft_w["eval/gold"])
        hv7.append(h)
        max7.append(float(r.max()))
        out.append(
            f"| {name} | {kl.min():.2f}–{kl.max():.2f} | {r[-1]:.3f} | {g[-1]:.3f} | {r.max():.3f} | "
            f"{g.max():.3f} | {h:.2f} | {hg:.2f} |"
        )
    gap_lines, gaps7 = [], []
    for i in range(len(fronts) - 1):
        a, b = fronts[i], fronts[i + 1]
        lo = max(np.min(a["eval/kl_sft"]), np.min(b["eval/kl_sft"]))
        hi = min(np.max(a["eval/kl_sft"]), np.max(b["eval/kl_sft"]))
        if hi > lo:
            grid = np.linspace(lo, hi, 50)
            d = front_at(b["eval/kl_sft"], b["eval/reward"], grid) - front_at(
                a["eval/kl_sft"], a["eval/reward"], grid
            )
            gaps7.append(float(np.nanmean(d)))
            gap_lines.append(
                f"iteration {i + 2} − {i + 1} on their common KL range [{lo:.2f}, {hi:.2f}]: "
                f"{np.nanmean(d):+.3f} mean, {np.nanmin(d):+.3f} min"
            )
        else:
            gap_lines.append(f"iteration {i + 2} vs {i + 1}: no common KL range")
    inc = np.diff(max7[: len(fronts)])
    out += [
        "",
        "Proxy-reward gap between consecutive fronts (front = max reward at KL ≤ k, interpolated): "
        + "; ".join(gap_lines)
        + f". Max proxy per iteration increments: {', '.join(f'{x:+.3f}' for x in inc)}. "
        f"For reference (P1, same HV definition): HV_proxy of the EMA-anchor RL trajectories "
        f"{A.fmt(hv[ema_label][0], 2)}, of the best SFT-anchor β "
        f"{max(hv[k][0].mean() for k in sft_labels):.2f}; HV_gold {A.fmt(hv[ema_label][1], 2)} and "
        f"{max(hv[k][1].mean() for k in sft_labels):.2f}.",
        "",
    ]
    # front(i+1) >= front(i) up to the evaluation noise, and each iteration reaches a higher reward
    monotone = all(x >= -sd_r for x in gaps7) and all(x > 0 for x in inc)
    diminishing = len(inc) < 2 or all(inc[i + 1] <= inc[i] for i in range(len(inc) - 1))
    p7_checks = [monotone, bool(diminishing)]

    # ---------------------------------------------------------------- claims
    def fmt_hv(label):
        return f"{label} {hv[label][0].mean():.2f}"

    n_body = len(out)
    out += [
        f"- **P1 {A.verdict([ema_best, explodes, saturates])}"
        f"{' (by the means; the step-HV CIs overlap)' if ema_best and not separated else ''}**: HV_proxy highest for the EMA "
        f"anchor: {'yes' if ema_best else 'no'} ({', '.join(fmt_hv(k) for k in rec['p1'])}; "
        f"95% CIs separated from every SFT β: {'yes' if separated else 'no'}); interpolated "
        f"HV_proxy highest for EMA: {'yes' if ema_best_interp else 'no'} "
        f"({', '.join(f'{k} {hv[k][2].mean():.2f}' for k in rec['p1'])}; CIs separated: "
        f"{'yes' if separated_i else 'no'}); "
        f"HV_gold highest for EMA: {'yes' if ema_best_gold else 'no'}. β = 0 explodes in KL "
        f"(mean final KL beyond the HV window, > {kl_ref:g} nats): {'yes' if explodes else 'no'} "
        f"({final_kl[b0]:.2f} nats; final KL of every run: "
        f"{', '.join(f'{k} {v:.2f}' for k, v in final_kl.items())}); SFT β = 0.1 saturates (second-half share "
        f"{sat[b01]:.2f} < 0.2): {'yes' if saturates else 'no'}.",
        f"- **P2 {A.verdict(p2_pass)}{' (a tie)' if p2_tie and all(p2_pass) else ''}**: trajectory HV_proxy θ_ema {np.mean(hv_anc):.2f} vs θ "
        f"{np.mean(hv_pol):.2f} (paired difference {A.fmt(hv_diff, 2)}"
        f"{': a tie within the 95% CI' if p2_tie else ''}); final θ_ema above the policy's front by {np.nanmean(gaps):+.3f} "
        "proxy at equal KL.",
        f"- **P3 {A.verdict(p3_checks)}**: at λ = 0.5 SLERP − max(ends) {np.mean(s5 - ends):+.3f}, "
        f"SLERP − LERP {np.mean(s5 - l5):+.3f}, KL(SLERP) − KL(LERP) {np.mean(ks5 - kl5):+.2f} nats "
        f"(means over {len(pairs)} pairs).",
        f"- **P4 {A.verdict(p4_checks) if p4_checks[0] else 'FAIL'}**: median \\|cos δ\\| {np.mean(med_task):.3f} (criterion "
        f"< 0.3), median cos θ {np.mean(med_full):.4f} (> 0.99); SLERP of full weights ≈ "
        f"LERP: proxy difference {np.mean(r_w - l5):+.3f} vs task-vector SLERP's "
        f"{np.mean(s5 - l5):+.3f} (≈ if at most half), parameter distance ratio "
        f"{np.mean(d_w / d_t):.2f}.",
        f"- **P5 {A.verdict(p5_checks) if p5_checks[0] else 'FAIL'}**: HV_proxy LITI {np.mean(hv_liti):.2f} vs RL trajectory "
        f"{np.mean(hv_traj):.2f}; reward concave-like at {conc}/{n_inner} interior η, KL convex-like "
        f"at {conv}/{n_inner}.",
        *([p6_line] if p6_line else []),
        f"- **P7 {A.verdict(p7_checks)}**: front(i+1) ≥ front(i) (gaps ≥ −{sd_r:.3f}, the "
        f"noise SD, and a higher max reward): {'yes' if monotone else 'no'} "
        f"(gaps {', '.join(f'{x:+.3f}' for x in gaps7)}; HV_proxy per iteration "
        f"{', '.join(f'{x:.2f}' for x in hv7[: len(fronts)])}, final front {hv7[-1]:.2f}); "
        f"diminishing gains: {'yes' if diminishing else 'no'}.",
    ]
    if divergence:
        out.append(
            "- **Proxy vs gold**: at high KL the proxy keeps improving while gold drops: "
            + "; ".join(divergence)
            + "."
        )
    else:
        out.append(
            "- **Proxy vs gold**: no run's mean gold fell more than 0.05 below its peak while the "
            "proxy rose (no divergence seen at this T)."
        )
    return out[:n_head], out[n_head:n_body], out[n_body:]


def _collapsed(rec: dict, threshold: float = 50.0) -> str:
    parts = []
    for label, e in rec["p1"].items():
        final = np.asarray(e["metrics"]["eval/kl_sft"])[:, -1]
        parts.append(f"{label} {int(np.sum(final > threshold))}/{final.size}")
    merged = [f"{np.max(f['eval/kl_sft']):.1f}" for f in rec["p7"]["iteration_fronts"]]
    return "; ".join(parts) + f"; WARP merges per iteration at KL {', '.join(merged)}"


def summary() -> str:
    title = "## WARP (Ramé et al. 2024): EMA anchor, SLERP, LITI, iterations"
    rec = A.read_record(NAME)
    if rec is None:
        return f"{title}\n\nNot measured yet: run `python -m benchmarks.alignment_warp`.\n"
    head, tables, claims = _report(rec)
    out = [title, "", *head, *tables, "### Claims (notes §6.3)", "", *claims]
    alt = A.read_record(ALT_NAME)
    if alt is not None:
        alt_head, _, alt_claims = _report(alt)
        out += [
            "",
            f"### The same benchmark at lr {alt['config']['learning_rate']:g}: collapse regime",
            "",
            f"Record `{ALT_NAME}.json` (`python -m benchmarks.alignment_warp --lr "
            f"{alt['config']['learning_rate']:g} --name {ALT_NAME}`; it was made when 1e-3 was the "
            "script's default, hence the command below). Final KL above 50 nats (a collapse on "
            f"the proxy's argmax response, whose KL is about 70): {_collapsed(alt)}.",
            "",
            *[line for line in alt_head if not line.startswith("**Hypervolume")],
            *alt_claims,
        ]
    names = _plots(rec)
    out += [""] + [f"![{n[:-4]}](alignment/{n})" for n in names] + [""]
    text = "\n".join(out) + "\n"
    A.write_section("alignment_warp.md", text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="runs per SFT β (EMA: twice that)")
    parser.add_argument("--steps", type=int, default=400, help="updates T of every P1 run")
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--batch", type=int, default=32, help="prompts per update")
    parser.add_argument("--samples", type=int, default=2, help="responses per prompt (RLOO)")
    parser.add_argument("--eval-prompts", type=int, default=256)
    parser.add_argument("--warp-steps", type=int, nargs="+", default=[300, 200, 200])
    parser.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate of every run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default=NAME, help="record name under results/alignment/")
    parser.add_argument("--summary", action="store_true", help="only rebuild the markdown")
    args = A.quick_parser(parser).parse_args()
    if args.quick:
        A.use_quick_world(args.quick)
    if not args.summary:
        A.write_record(args.name, run(args))
    print(summary())


if __name__ == "__main__":
    main()
