"""WARM (Ramé et al., ICML 2024) on purerl's toy RLHF world: the notes' claims W1, W2, W4-W8.

    python -m benchmarks.alignment_warm --seeds 5 --rl-steps 600
    python -m benchmarks.alignment_warm --w8 --seeds 5 --rl-steps 600   # W8 only (its own record)
    python -m benchmarks.alignment_warm --w3 --seeds 5                  # W3 only (its own record)
    python -m benchmarks.alignment_warm --summary   # print the section rebuilt from the records
    python -m benchmarks.alignment_warm --quick /tmp/q --seeds 2 --rl-steps 10   # smoke run

Two experiments on the shared world of :mod:`benchmarks._alignment` (one pre-trained + SFT'd LM):

* ``accuracy`` -- for label noise 0% and 25% and each seed, ``M = 4`` diverse reward models
  (``_alignment.reward_models``), then

  - pairwise accuracy of each member, the weight average (WA = WARM) and the prediction ensemble
    (ENS) on the in-distribution and shifted sets and on the (corrupted / clean) training pairs
    (``warm.evaluate_warm``; W2, W4);
  - Best-of-N from the SFT policy, N = 1 .. 32, selected by each RM and scored by the gold reward
    (``warm.best_of_n_gold``, 256 prompts; W5);
  - the accuracy along the segment member 0 -> member 1 on the shifted set, against the
    prediction interpolation and the diagonal (``warm.interpolation_curve``; W1, W2).

* ``rl`` -- REINFORCE / RLOO with a KL penalty to the SFT policy (``policy_gradient``,
  ``anchor="sft"``) against the proxy reward of (a) a single RM (member 0) and (b) WARM, the weight
  average of the 4 members, per seed, with the clean-label (0% noise) RMs; optionally (c) ENS, the
  mean of the 4 members' rewards. All single / WARM runs are one ``jit(vmap(train))`` (the two
  proxies share a pytree structure, so their parameters are stacked and traced; ``train`` follows
  ``loop.make_train``'s schedule and also keeps the policy's weights at every evaluation). Every
  50 updates: proxy reward, gold reward, analytic ``KL(pi || pi_sft)`` and spurious-token count of
  one sample per held-out prompt (256 fixed prompts). Then the gold win rate of WARM against the
  single RM (and ENS) for the final policies (512 held-out prompts) and for each run's gold-best
  checkpoint (chosen on the 256 evaluation prompts, compared on the other 256; the notes' W7
  protocol). Single and WARM runs of a seed share the training key (paired). Settings: beta =
  0.01, Adam lr = 1e-4 (dev runs with 1e-3 and 3e-4 hacked within 50-150 updates, too fast for
  50-update evaluations), 32 prompts x 2 samples per update.

* ``w8`` (``--w8``, run on its own) -- the same RL against a single RM and WARM with the KL
  coefficient ``beta`` in ``W8_BETAS`` (traced: one compile for every run), clean-label RMs
  retrained per seed as above: which ``beta`` gives the best final (and peak) gold reward for each
  proxy (W8: lower with WARM).

* ``w3`` (``--w3``, run on its own) -- pairs of reward models of growing diversity (WARM Fig. 3
  a -> d), each type adding to the previous one: ``steps`` = one run at 250 and 500 updates (one
  learning rate, no dropout, one data order: the 250-update model *is* the 500-update run's
  checkpoint, ``minibatches`` being prefix-stable); ``order`` = two runs with different data
  orders; ``lr`` = and learning rates 1e-3 vs 4e-4; ``baklava`` = and different SFT inits (the
  SFT run's checkpoints at 200 and 400 updates). For each pair: accuracy at the weight midpoint
  minus the mean of the two ends (``warm.interpolation_curve`` at lambda = .5) on the ID and
  shifted sets, at 0% and 25% flipped labels.

Records: ``results/alignment/warm_accuracy.json``, ``warm_w8.json``, ``warm_w3.json`` and ``results/alignment/warm_rl.json`` (per-seed
values); the section goes to ``results/alignment_warm.md`` with the plots
``results/alignment/warm_bon.png`` and ``results/alignment/warm_rl.png``. ``--summary`` only
rebuilds the markdown (and the plots) from the records and prints it; ``benchmarks/alignment.py``
calls :func:`summary` to build the aggregate page.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks import _alignment as A

NOISES = (0.0, 0.25)
LAMBDAS = (0.0, 0.25, 0.5, 0.75, 1.0)
BON_PROMPTS = 256
BON_N = 32
RL_NOISE = 0.0  # the RL proxies are the clean-label RMs (label noise is the accuracy experiment's)
RL_BETA = 0.01  # KL coefficient to the SFT policy: small enough that the proxy is hacked in budget
RL_LR = 1e-4  # dev runs: 1e-3 and 3e-4 hack within 50-150 updates, too fast for 50-update evals
RL_BATCH = 32  # prompts per update
RL_SAMPLES = 2  # responses per prompt (RLOO baseline)
EVAL_EVERY = 50
W8_BETAS = (0.001, 0.003, 0.01)  # W8 sweep of the KL coefficient (notes §6.2)
W3_TYPES = ("steps", "order", "lr", "baklava")  # increasing diversity (WARM Fig. 3 a -> d)
W3_BAKLAVA = (200, 400)  # SFT checkpoints of the Baklava pair
EVAL_PROMPTS = 256
DROP = 0.1  # "hacked" = gold below its peak by this much
ACCURACY_COLUMNS = (
    ("ID", "in_distribution"),
    ("shifted", "shifted"),
    ("train-corrupted", "train_corrupted"),
    ("train-clean", "train_clean"),
)


def _nkey(noise: float) -> str:
    return f"{int(round(noise * 100))}"


def use_quick(out: str) -> None:
    """``--quick OUT``: the tiny world of ``_alignment.use_quick_world`` and tiny evaluation sizes
    (16 Best-of-N prompts, N = 8, RL batches of 8, evaluations every 5 updates on 32 prompts)."""
    global BON_PROMPTS, BON_N, EVAL_EVERY, EVAL_PROMPTS, RL_BATCH
    A.use_quick_world(out)
    BON_PROMPTS, BON_N, EVAL_EVERY, EVAL_PROMPTS, RL_BATCH = 16, 8, 5, 32, 8


# ----------------------------------------------------------------------------- experiment 1


def run_accuracy(w, seeds: int, start: float) -> tuple[dict, dict]:
    """Returns ``(record, clean_params)``: ``clean_params[seed]`` = the stacked RMs at 0% noise."""
    import jax

    from purerl.alignment import warm

    accuracy: dict = {}
    bon: dict = {}
    interp: dict = {}
    best: dict = {}
    clean_params = {}
    seconds = {"reward_models": 0.0, "evaluate": 0.0, "best_of_n": 0.0, "interpolation": 0.0}
    for noise in NOISES:
        nk = _nkey(noise)
        accuracy[nk], bon[nk], interp[nk], best[nk] = {}, {}, {}, []
        for seed in range(seeds):
            t0 = time.perf_counter()
            run, prefs, eval_sets = A.reward_models(w, noise, seed)
            jax.block_until_ready(run.params)
            t1 = time.perf_counter()
            acc = warm.evaluate_warm(w.lm_config, run.params, eval_sets, prefs)
            t2 = time.perf_counter()
            key = jax.random.fold_in(jax.random.key(4000), seed)  # same SFT samples at both noises
            table = warm.best_of_n_gold(
                w.lm_config, w.task, w.sft, run.params, key, num_prompts=BON_PROMPTS, n=BON_N
            )
            t3 = time.perf_counter()
            curve = warm.interpolation_curve(
                w.lm_config,
                A.member(run.params, 0),
                A.member(run.params, 1),
                np.asarray(LAMBDAS),
                eval_sets["shifted"],
            )
            t4 = time.perf_counter()
            for k, v in acc.items():
                accuracy[nk].setdefault(k, []).append(v)
            for k, v in table.items():
                if k not in ("n", "kl_bound"):
                    bon[nk].setdefault(k, []).append(v)
            bon["n"], bon["kl_bound"] = table["n"], table["kl_bound"]
            for k in ("wa", "ens", "diagonal"):
                interp[nk].setdefault(k, []).append(curve[k])
            m = int(np.shape(run.params.head)[0])
            best[nk].append(int(np.argmax([acc[f"in_distribution/member_{i}"] for i in range(m)])))
            if noise == RL_NOISE:
                clean_params[seed] = run.params
            for name, dt in zip(seconds, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                seconds[name] += dt
            A.log(
                start,
                f"accuracy noise={noise:.2f} seed={seed}: RMs {t1 - t0:.0f} s, eval {t2 - t1:.0f} s, "
                f"BoN {t3 - t2:.0f} s, interp {t4 - t3:.0f} s | ID wa {acc['in_distribution/wa']:.3f}"
                f" ens {acc['in_distribution/ens']:.3f} | shifted wa {acc['shifted/wa']:.3f} ens "
                f"{acc['shifted/ens']:.3f} | BoN@{BON_N} gold wa {table['gold/wa'][-1]:.3f}",
            )
    record = {
        "seeds": seeds,
        "noises": list(NOISES),
        "num_members": A.NUM_MEMBERS,
        "rm_steps": A.RM_STEPS,
        "num_pairs": A.NUM_PAIRS,
        "eval_pairs": A.EVAL_PAIRS,
        "bon_prompts": BON_PROMPTS,
        "lambdas": list(LAMBDAS),
        "world_seconds": w.seconds,
        "accuracy": accuracy,
        "best_member": best,
        "bon": bon,
        "interpolation": interp,
        "seconds": seconds,
    }
    return record, clean_params


# ----------------------------------------------------------------------------- experiment 2


def rl_config(beta=RL_BETA):
    from purerl.alignment import policy_gradient as pg

    return pg.RLConfig(
        beta=beta,
        anchor="sft",
        batch_size=RL_BATCH,
        num_samples=RL_SAMPLES,
        learning_rate=RL_LR,
    )


def _train_runs(w, reward_of, params, keys, steps: int, betas=None, keep_checkpoints=True):
    """``jit(vmap(train))`` over runs; ``reward_of(rm_params, tokens, mask)`` is traced inside.

    ``loop.make_train`` with one evaluation row before any update, then one every ``EVAL_EVERY``
    updates, keeping the policy's weights at every row (``snapshot``): the gold-best checkpoint of
    a run is then available for W7. Returns ``(rows {key: [runs, rows]}, checkpoints [runs, rows,
    ...])`` (checkpoints ``None`` without ``keep_checkpoints``). ``betas`` ``[runs]``: each run's KL
    coefficient, traced (default ``RL_BETA`` for all).
    """
    import jax.numpy as jnp

    from purerl.alignment import policy_gradient as pg

    prompts = np.asarray(w.eval_prompts[:EVAL_PROMPTS])  # a constant, not a traced slice
    if betas is None:
        betas = np.full(keys.shape[0], RL_BETA)

    def make(rm_params, beta):
        cfg = rl_config(beta)
        fn = lambda t, m: reward_of(rm_params, t, m)  # noqa: E731
        algo = pg.make(cfg, w.lm_config, w.task, fn)
        return algo, pg.make_evaluate(cfg, w.lm_config, w.task, fn, prompts=prompts)

    snapshot = (lambda s: s.params) if keep_checkpoints else None
    select = lambda out: (out[1], out[2] if keep_checkpoints else None)  # noqa: E731
    hparams = (params, jnp.asarray(betas, jnp.float32))
    config = A.loop_config(steps, EVAL_EVERY)
    (rows, ckpts), _, _ = A.rl_runs(f"{keys.shape[0]} RL runs", make, keys, hparams,
                                    (w.sft, w.sft), config, snapshot=snapshot, select=select)  # fmt: skip
    return A.host(rows), ckpts


CURVE_KEYS = ("eval/reward", "eval/gold", "eval/kl_sft", "eval/spurious", "eval/length")


def _record_config(steps: int, without: tuple[str, ...] = ()) -> dict:
    """The RL settings stored in a record (``without`` those keys)."""
    cfg = rl_config()
    config = {
        "algorithm": "REINFORCE / RLOO, KL in the reward (k1), anchor = SFT",
        "beta": cfg.beta,
        "learning_rate": cfg.learning_rate,
        "batch_size": cfg.batch_size,
        "num_samples": cfg.num_samples,
        "temperature": cfg.temperature,
        "num_updates": steps,
        "eval_every": EVAL_EVERY,
        "eval_prompts": EVAL_PROMPTS,
    }
    return {k: v for k, v in config.items() if k not in without}


def run_rl(w, clean_params: dict, seeds: int, steps: int, ens: bool, start: float) -> dict:
    import jax
    import jax.numpy as jnp

    from purerl.alignment import reward_model, warm

    reward_of = lambda p, t, m: reward_model.reward(w.lm_config, p, t, m)  # noqa: E731
    singles = [A.member(clean_params[s], 0) for s in range(seeds)]
    was = [warm.weight_average(clean_params[s]) for s in range(seeds)]
    seed_keys = [jax.random.fold_in(jax.random.key(3000), s) for s in range(seeds)]
    keys = jnp.stack(seed_keys + seed_keys)  # single and WARM of a seed: the same training key
    t0 = time.perf_counter()
    rows, ckpts = _train_runs(w, reward_of, A.stack_trees(singles + was), keys, steps)
    seconds = {"single_warm": time.perf_counter() - t0}
    A.log(
        start,
        f"rl single + WARM: {2 * seeds} runs x {steps} updates, {seconds['single_warm']:.0f} s",
    )
    curves = {
        "single": {k: rows[k][:seeds] for k in CURVE_KEYS},
        "warm": {k: rows[k][seeds:] for k in CURVE_KEYS},
    }
    runs = {"single": (ckpts, 0), "warm": (ckpts, seeds)}  # (checkpoints, first run index)
    if ens:

        def ens_reward(stacked, t, m):
            return jnp.mean(jax.vmap(lambda p: reward_of(p, t, m))(stacked), axis=0)

        t0 = time.perf_counter()
        stacked = A.stack_trees([clean_params[s] for s in range(seeds)])  # [S, M, ...]
        rows_e, ckpts_e = _train_runs(w, ens_reward, stacked, jnp.stack(seed_keys), steps)
        seconds["ens"] = time.perf_counter() - t0
        A.log(start, f"rl ENS: {seeds} runs x {steps} updates, {seconds['ens']:.0f} s")
        curves["ens"] = {k: rows_e[k] for k in CURVE_KEYS}
        runs["ens"] = (ckpts_e, 0)

    def policy(proxy: str, seed: int, row: int):
        tree, first = runs[proxy]
        return jax.tree.map(lambda x: x[first + seed, row], tree)

    # the final policies, on all 512 held-out prompts; and each run's best checkpoint by gold on
    # the first 256 (the evaluation prompts of the curves), compared on the other 256
    best_row = {p: np.argmax(c["eval/gold"], axis=1) for p, c in curves.items()}
    last = len(rows["loop/updates"][0]) - 1
    heldout = w._replace(eval_prompts=w.eval_prompts[EVAL_PROMPTS:])
    t0 = time.perf_counter()
    pairs = [("warm", "single")] + ([("warm", "ens"), ("ens", "single")] if ens else [])
    win_rates: dict = {"final": {}, "best": {}}
    for which, world_, row_of in (
        ("final", w, lambda p, s: last),
        ("best", heldout, lambda p, s: int(best_row[p][s])),
    ):
        for a, b in pairs:
            name = f"{a}_vs_{b}"
            out = win_rates[which][name] = {"win": [], f"gold_{a}": [], f"gold_{b}": []}
            for s in range(seeds):
                key = jax.random.fold_in(jax.random.key(5000), s)
                win, ga, gb = A.gold_win_rate(
                    world_,
                    policy(a, s, row_of(a, s)),
                    policy(b, s, row_of(b, s)),
                    key,
                    temperature=rl_config().temperature,
                )
                out["win"].append(win)
                out[f"gold_{a}"].append(ga)
                out[f"gold_{b}"].append(gb)
            A.log(start, f"win rate ({which}) {name}: {A.fmt(out['win'])}")
    seconds["win_rates"] = time.perf_counter() - t0
    return {
        "seeds": seeds,
        "rm_noise": RL_NOISE,
        "proxies": list(curves),
        "config": _record_config(steps),
        "updates": rows["loop/updates"][0],
        "curves": curves,
        "win_rates": win_rates,
        "best_update": {p: rows["loop/updates"][0][r] for p, r in best_row.items()},
        "seconds": seconds,
    }


def run_w8(w, seeds: int, steps: int, start: float) -> dict:
    """W8: single RM (member 0) vs WARM, ``beta`` in ``W8_BETAS``, all runs in one compile."""
    import jax
    import jax.numpy as jnp

    from purerl.alignment import reward_model, warm

    singles, was = [], []
    t0 = time.perf_counter()
    for seed in range(seeds):
        run, _, _ = A.reward_models(w, RL_NOISE, seed)  # as in run_accuracy
        singles.append(A.member(run.params, 0))
        was.append(warm.weight_average(run.params))
    rm_seconds = time.perf_counter() - t0
    A.log(start, f"w8: {seeds} x {A.NUM_MEMBERS} clean RMs, {rm_seconds:.0f} s")
    reward_of = lambda p, t, m: reward_model.reward(w.lm_config, p, t, m)  # noqa: E731
    seed_keys = [jax.random.fold_in(jax.random.key(3000), s) for s in range(seeds)]  # as run_rl
    # run order: beta-major, then proxy (single, WARM), then seed
    layout = [(b, proxy, s) for b in W8_BETAS for proxy in ("single", "warm") for s in range(seeds)]
    params = A.stack_trees([(singles if proxy == "single" else was)[s] for _, proxy, s in layout])
    keys = jnp.stack([seed_keys[s] for _, _, s in layout])
    betas = np.asarray([b for b, _, _ in layout])
    t0 = time.perf_counter()
    rows, _ = _train_runs(w, reward_of, params, keys, steps, betas, keep_checkpoints=False)
    rl_seconds = time.perf_counter() - t0
    A.log(start, f"w8: {len(layout)} RL runs x {steps} updates, {rl_seconds:.0f} s")
    curves: dict = {}
    for i, (b, proxy, _) in enumerate(layout):
        entry = curves.setdefault(f"{b:g}", {}).setdefault(proxy, {k: [] for k in CURVE_KEYS})
        for k in CURVE_KEYS:
            entry[k].append(rows[k][i])
    return {
        "seeds": seeds,
        "rm_noise": RL_NOISE,
        "betas": list(W8_BETAS),
        "config": _record_config(steps, ("beta", "temperature")),  # beta is swept
        "updates": rows["loop/updates"][0],
        "curves": {
            b: {p: {k: np.asarray(v) for k, v in c.items()} for p, c in d.items()}
            for b, d in curves.items()
        },
        "seconds": {"reward_models": rm_seconds, "rl": rl_seconds},
    }


def run_w3(w, seeds: int, start: float) -> dict:
    """W3: the midpoint gain ``Acc(WA_.5) - diag_.5`` for pairs of growing diversity."""
    import dataclasses

    import jax

    from purerl.alignment import warm

    base = dataclasses.replace(
        A.warm_config(w),
        num_members=2,
        learning_rates=(1e-3,),
        dropout_rates=(0.0,),
        shared_data_order=True,
    )
    half = dataclasses.replace(base, num_members=1, steps=base.steps // 2)
    configs = {
        "order": dataclasses.replace(base, shared_data_order=False),
        "lr": dataclasses.replace(base, shared_data_order=False, learning_rates=(1e-3, 4e-4)),
    }
    configs["baklava"] = configs["lr"]
    full = dataclasses.replace(half, steps=base.steps)

    def fit(key, init, prefs, config):
        return warm.train_reward_models(key, init, prefs, config).params

    baklava_init = A.sft_checkpoints(w, W3_BAKLAVA)
    gaps: dict = {}
    t0 = time.perf_counter()
    for noise in NOISES:
        nk = _nkey(noise)
        gaps[nk] = {t: {"in_distribution": [], "shifted": [], "wa_minus_ens": []} for t in W3_TYPES}
        for seed in range(seeds):
            prefs, eval_sets = A.preferences(w, noise, seed)
            key = jax.random.fold_in(jax.random.key(6000 + seed), int(round(noise * 100)))
            pairs = {}
            pairs["steps"] = (
                A.member(fit(key, w.sft, prefs, half), 0),
                A.member(fit(key, w.sft, prefs, full), 0),
            )
            for t in ("order", "lr"):
                run = fit(key, w.sft, prefs, configs[t])
                pairs[t] = (A.member(run, 0), A.member(run, 1))
            run = fit(key, baklava_init, prefs, configs["baklava"])
            pairs["baklava"] = (A.member(run, 0), A.member(run, 1))
            for t, (a, b) in pairs.items():
                for split in ("in_distribution", "shifted"):
                    c = warm.interpolation_curve(
                        w.lm_config, a, b, np.asarray([0.5]), eval_sets[split]
                    )
                    gaps[nk][t][split].append(100.0 * float(c["wa"][0] - c["diagonal"][0]))
                    if split == "shifted":
                        gaps[nk][t]["wa_minus_ens"].append(100.0 * float(c["wa"][0] - c["ens"][0]))
            A.log(
                start,
                f"w3 noise={noise:.2f} seed={seed}: shifted gap (pt) "
                + ", ".join(f"{t} {gaps[nk][t]['shifted'][-1]:+.2f}" for t in W3_TYPES),
            )
    return {
        "seeds": seeds,
        "noises": list(NOISES),
        "types": list(W3_TYPES),
        "steps": base.steps,
        "baklava_sft_steps": list(W3_BAKLAVA),
        "gaps_pt": gaps,
        "seconds": time.perf_counter() - t0,
    }


def _w3_section(rec: dict, claims: list[str]) -> list[str]:
    types = rec["types"]
    desc = {
        "steps": f"one run at {rec['steps'] // 2} and {rec['steps']} updates",
        "order": "+ different data orders",
        "lr": "+ learning rates 1e-3 vs 4e-4",
        "baklava": f"+ SFT inits at {rec['baklava_sft_steps'][0]} vs {rec['baklava_sft_steps'][1]} updates",
    }
    lines = [
        "### W3: midpoint gain vs the diversity of the pair (Fig. 3)",
        "",
        f"Pairs of reward models (no dropout), each type adding a source of diversity to the "
        f"previous one; accuracy of the weight midpoint minus the mean accuracy of the two ends "
        f"(`interpolation_curve` at λ = .5), in points, {rec['seeds']} seeds, mean ± 95% CI.",
        "",
        "| labels | pair type | ID gap | shifted gap | shifted WA − ENS |",
        "|---|---|---|---|---|",
    ]
    checks, notes = [], []
    for nk in (_nkey(n) for n in rec["noises"]):
        means = []
        for t in types:
            g = rec["gaps_pt"][nk][t]
            means.append(float(np.mean(g["shifted"])))
            lines.append(
                f"| {'clean' if nk == '0' else nk + '% flipped'} | {t}: {desc[t]} | "
                f"{A.fmt(g['in_distribution'], 2)} | {A.fmt(g['shifted'], 2)} | {A.fmt(g['wa_minus_ens'], 2)} |"
            )
        rho = float(np.corrcoef(np.arange(len(types)), np.argsort(np.argsort(means)))[0, 1])
        checks.append(rho >= 0.8 - 1e-9)  # rank correlations are multiples of 0.1 here
        notes.append(
            f"{'clean' if nk == '0' else nk + '% flipped'}: shifted gaps "
            + ", ".join(f"{t} {m:+.2f}" for t, m in zip(types, means, strict=True))
            + f" (Spearman with the diversity rank {rho:+.2f})"
        )
    lines.append("")
    claims.append(
        f"- **W3 (the midpoint gain grows with diversity, Fig. 3): {A.verdict(checks)}** (seed "
        "means; criterion: Spearman ≥ 0.8 between the diversity rank and the shifted-set gap). "
        + "; ".join(notes)
        + "."
    )
    return lines


def _w8_section(rec: dict, claims: list[str]) -> list[str]:
    betas = rec["betas"]
    lines = [
        "### W8: the best KL coefficient with WARM vs a single RM (Fig. 8c)",
        "",
        f"REINFORCE / RLOO against member 0 (single) or the weight average (WARM) of the clean-label "
        f"RMs, β ∈ {{{', '.join(f'{b:g}' for b in betas)}}}, {rec['config']['num_updates']} "
        f"updates, {rec['seeds']} seeds (paired keys across proxies and β; one compile). Gold "
        "reward of one sample per prompt on the evaluation prompts; peak = the best evaluation "
        "row of each run. Mean ± 95% CI over seeds.",
        "",
        "| β | proxy | final gold | peak gold | final KL(π‖π_sft) | final proxy reward |",
        "|---|---|---|---|---|---|",
    ]
    final, peak = {}, {}
    for b in betas:
        for proxy in ("single", "warm"):
            c = {k: np.asarray(v, np.float64) for k, v in rec["curves"][f"{b:g}"][proxy].items()}
            g = c["eval/gold"]
            final[(b, proxy)], peak[(b, proxy)] = g[:, -1], g.max(axis=1)
            lines.append(
                f"| {b:g} | {'WARM' if proxy == 'warm' else 'single RM'} | {A.fmt(g[:, -1])} | "
                f"{A.fmt(g.max(axis=1))} | {A.fmt(c['eval/kl_sft'][:, -1], 2)} | "
                f"{A.fmt(c['eval/reward'][:, -1])} |"
            )
    best = {
        (what, proxy): betas[int(np.argmax([d[(b, proxy)].mean() for b in betas]))]
        for what, d in (("final", final), ("peak", peak))
        for proxy in ("single", "warm")
    }
    lines += [
        "",
        f"Best β by mean final gold: single {best[('final', 'single')]:g}, WARM "
        f"{best[('final', 'warm')]:g}; by mean peak gold: single {best[('peak', 'single')]:g}, "
        f"WARM {best[('peak', 'warm')]:g}.",
        "",
    ]
    ok = [best[("final", "warm")] <= best[("final", "single")]]
    ok.append(best[("peak", "warm")] <= best[("peak", "single")])

    def resolved(what, d, proxy):  # the best beta above every other one, paired over seeds?
        b_star = best[(what, proxy)]
        diffs = [A.ci(d[(b_star, proxy)] - d[(b, proxy)]) for b in betas if b != b_star]
        return all(np.isfinite(h) and m > h for m, h in diffs), min(m for m, _ in diffs)

    res = {
        (what, proxy): resolved(what, d, proxy)
        for what, d in (("final", final), ("peak", peak))
        for proxy in ("single", "warm")
    }
    unresolved = [f"{what} {proxy}" for (what, proxy), (ok_, _) in res.items() if not ok_]
    lines += [
        "Is each argmax resolved (paired over seeds: best β minus every other β, CI above 0)? "
        + "; ".join(
            f"{what} gold, {proxy}: {'yes' if ok_ else 'no'} (smallest margin {m:+.3f})"
            for (what, proxy), (ok_, m) in res.items()
        )
        + ".",
        "",
    ]
    claims.append(
        f"- **W8 (the best KL coefficient is lower with WARM, Fig. 8c): {A.verdict(ok)}"
        f"{', unresolved' if unresolved else ''}** "
        f"(seed means{'; the argmax is not resolved for ' + ', '.join(unresolved) if unresolved else ''}; β ∈ {{{', '.join(f'{b:g}' for b in betas)}}}). argmax-β of final gold: "
        f"WARM {best[('final', 'warm')]:g} vs single {best[('final', 'single')]:g}; of peak gold: "
        f"WARM {best[('peak', 'warm')]:g} vs single {best[('peak', 'single')]:g}"
        + (
            " (equal β: the ≤ holds only as a tie)."
            if best[("final", "warm")] == best[("final", "single")]
            else "."
        )
    )
    return lines


# ----------------------------------------------------------------------------- analysis


def _member_values(acc: dict, column: str, nk_best: list, which: str) -> np.ndarray:
    """Per-seed values of one accuracy column for ``which`` in member_mean / best / wa / ens."""
    if which == "best":
        return np.asarray([acc[f"{column}/member_{i}"][s] for s, i in enumerate(nk_best)])
    return np.asarray(acc[f"{column}/{which}"])


def peak_and_drop(updates: np.ndarray, gold: np.ndarray) -> tuple[float, int, int | None]:
    """``(peak gold, update of the peak, first later update with gold < peak - DROP or None)``."""
    i = int(np.argmax(gold))
    later = np.nonzero(gold[i:] < gold[i] - DROP)[0]
    return float(gold[i]), int(updates[i]), (int(updates[i + later[0]]) if later.size else None)


def below_sft(updates: np.ndarray, gold: np.ndarray) -> list:
    """Per run (rows of ``gold [runs, rows]``): the first update whose gold is below the SFT
    policy's (row 0), or None."""
    out = []
    for g in gold:
        j = np.nonzero(g[1:] < g[0])[0]
        out.append(int(updates[1 + j[0]]) if j.size else None)
    return out


def best_within_kl(gold: np.ndarray, kl: np.ndarray, budget: float) -> np.ndarray:
    """Per run: the highest gold among the evaluations whose KL to SFT is at most ``budget``."""
    return np.max(np.where(kl <= budget, gold, -np.inf), axis=1)


KL_BUDGETS = (0.5, 1.0, 2.0, 5.0)


def _drop_cell(drops: list) -> str:
    return ", ".join("never" if d is None else str(d) for d in drops)


# ----------------------------------------------------------------------------- plots


def plot_bon(acc_rec: dict, name: str) -> None:
    plt = A.pyplot()

    bon = acc_rec["bon"]
    ns = np.asarray(bon["n"])
    noises = [n for n in map(_nkey, acc_rec["noises"]) if n in bon]
    fig, axes = plt.subplots(1, len(noises), figsize=(5.5 * len(noises), 4), squeeze=False)
    for ax, nk in zip(axes[0], noises, strict=True):
        series = _bon_series(acc_rec, nk)
        for label, vals in series.items():
            m, h = A.mean_ci(vals)
            style = "k--" if label == "gold oracle" else "-o"
            (line,) = ax.plot(ns, m, style, label=label, markersize=3)
            ax.fill_between(ns, m - h, m + h, alpha=0.12, color=line.get_color())
        ax.set_xscale("log", base=2)
        ax.set_xlabel("N (Best-of-N from SFT)")
        ax.set_ylabel("gold reward of the selected response")
        ax.set_title(f"WARM Best-of-N, {nk}% flipped labels (mean ± 95% CI)")
        ax.legend(fontsize=8)
    A.save_figure(fig, name, 110)


def _bon_series(acc_rec: dict, nk: str) -> dict[str, np.ndarray]:
    bon = acc_rec["bon"][nk]
    m = acc_rec["num_members"]
    members = np.asarray([bon[f"gold/member_{i}"] for i in range(m)])  # [M, S, N]
    best = acc_rec["best_member"][nk]
    return {
        "single RM (mean of members)": members.mean(axis=0),
        "best member (by ID acc.)": np.asarray([members[i, s] for s, i in enumerate(best)]),
        "WARM (WA)": np.asarray(bon["gold/wa"]),
        "ENS": np.asarray(bon["gold/ens"]),
        "gold oracle": np.asarray(bon["gold/gold"]),
    }


LABELS = {"single": "single RM (member 0)", "warm": "WARM (WA of 4)", "ens": "ENS (4)"}


def plot_rl(rl_rec: dict, name: str) -> None:
    plt = A.pyplot()

    updates = np.asarray(rl_rec["updates"])
    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    for proxy in rl_rec["proxies"]:
        c = {k: np.asarray(v) for k, v in rl_rec["curves"][proxy].items()}
        for ax, key in zip(axes[:2], ("eval/reward", "eval/gold"), strict=True):
            m, h = A.mean_ci(c[key])
            (line,) = ax.plot(updates, m, "-o", markersize=3, label=LABELS[proxy])
            ax.fill_between(updates, m - h, m + h, alpha=0.2, color=line.get_color())
        kl, _ = A.mean_ci(c["eval/kl_sft"])
        gold, _ = A.mean_ci(c["eval/gold"])
        axes[2].plot(kl, gold, "-o", markersize=3, label=LABELS[proxy])
    axes[0].set_title("proxy reward (the RM being optimised)")
    axes[1].set_title("gold reward")
    axes[2].set_title("gold vs KL(pi || pi_sft) (seed means)")
    for ax in axes[:2]:
        ax.set_xlabel("RL updates")
    axes[2].set_xlabel("KL to SFT (nats)")
    axes[2].set_xscale("symlog", linthresh=1.0)
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(
        f"REINFORCE/RLOO vs proxy RM, beta={rl_rec['config']['beta']}, "
        f"{rl_rec['seeds']} seeds (mean ± 95% CI)"
    )
    A.save_figure(fig, name, 110)


# ----------------------------------------------------------------------------- summary


def summary() -> str:
    """The ``## WARM`` markdown section (and the two PNGs), rebuilt from the records."""
    acc_rec = A.read_record("warm_accuracy")
    rl_rec = A.read_record("warm_rl")
    lines = ["## WARM: weight-averaged reward models (Ramé et al., ICML 2024)", ""]
    if acc_rec is None and rl_rec is None:
        return "\n".join(lines + ["Not run yet: `python -m benchmarks.alignment_warm`.", ""])
    lines += [
        "Toy RLHF world of `benchmarks/_alignment.py` (docs/alignment/index.md): M = 4 reward "
        "models per seed fine-tuned from the linear-probed SFT trunk with cycled learning rates "
        "(1e-3, 4e-4), dropout (0, 0.05, 0.1) and data orders; WA = their weight average (WARM), "
        "ENS = the mean of their rewards. All numbers are mean ± 95% t-CI over seeds. "
        "Command: `python -m benchmarks.alignment_warm --seeds 5`.",
        "",
    ]
    claims: list[str] = []
    if acc_rec is not None:
        lines += _accuracy_section(acc_rec, claims)
    if rl_rec is not None:
        lines += _rl_section(rl_rec, claims)
    w3_rec = A.read_record("warm_w3")
    if w3_rec is not None:
        lines += _w3_section(w3_rec, claims)
    w8_rec = A.read_record("warm_w8")
    if w8_rec is not None:
        lines += _w8_section(w8_rec, claims)
    claims.sort(key=lambda c: c[c.index("W") :])  # W1 .. W8, whichever section made each
    lines += ["### Claims (research notes alignment.md §6.2)", "", *claims, ""]
    lines += [
        "Not measured here: "
        + ("" if w3_rec is not None else "W3 (gain grows with diversity, pair types), ")
        + ("" if w8_rec is not None else "W8 (the best KL coefficient is lower with WARM), ")
        + "the W5 sub-criterion 'win rate of WARM-BoN vs SFT' (`best_of_n_gold` reports "
        "means only).",
        "",
    ]
    lines += ["### Provenance", ""]
    named = {"warm_accuracy": acc_rec, "warm_rl": rl_rec, "warm_w3": w3_rec, "warm_w8": w8_rec}
    lines += A.provenance_lines(named)
    return "\n".join(lines) + "\n"


def _accuracy_section(rec: dict, claims: list[str]) -> list[str]:
    seeds, m = rec["seeds"], rec["num_members"]
    lines = [
        f"### Reward-model accuracy ({seeds} seeds, M = {m}, {rec['num_pairs']} training pairs, "
        f"{rec['rm_steps']} BT updates per member)",
        "",
        f"Pairwise accuracy (%) on the in-distribution (ID) and shifted held-out pairs "
        f"({rec.get('eval_pairs', A.EVAL_PAIRS):,} each) and on the training pairs; train-corrupted is measured against the *flipped* label "
        "(high = memorised the noise). 'best member' = the member with the highest ID accuracy "
        "in each seed. WA − ENS is the paired difference.",
        "",
    ]
    for nk in map(_nkey, rec["noises"]):
        acc, best = rec["accuracy"][nk], rec["best_member"][nk]
        cols = [(label, key) for label, key in ACCURACY_COLUMNS if f"{key}/wa" in acc]
        if "train_clean/wa" not in acc and "train/wa" in acc:
            cols.append(("train (all clean)", "train"))
        lines += [
            f"**{nk}% flipped labels**",
            "",
            "| model | " + " | ".join(c for c, _ in cols) + " |",
            "|---|" + "---|" * len(cols),
        ]
        for label, which in (
            ("single RM (mean of members)", "member_mean"),
            ("best member", "best"),
            ("WA (WARM)", "wa"),
            ("ENS", "ens"),
        ):
            cells = [A.pct(_member_values(acc, key, best, which)) for _, key in cols]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        diff = [A.pct(np.asarray(acc[f"{k}/wa"]) - np.asarray(acc[f"{k}/ens"])) for _, k in cols]
        lines += ["| WA − ENS | " + " | ".join(diff) + " |", ""]

    # interpolation
    lams = rec["lambdas"]
    lines += [
        "**Interpolation member 0 → member 1 on the shifted set** (accuracy %; WA_λ = "
        "acc(r of (1−λ)φ0 + λφ1), ENS_λ = acc((1−λ)r0 + λr1), diag = (1−λ)acc0 + λacc1)",
        "",
        "| noise | λ | WA_λ | ENS_λ | diag | WA_λ − diag | WA_λ − ENS_λ |",
        "|---|---|---|---|---|---|---|",
    ]
    for nk in map(_nkey, rec["noises"]):
        c = {k: np.asarray(v) for k, v in rec["interpolation"][nk].items()}
        for j, lam in enumerate(lams):
            lines.append(
                f"| {nk}% | {lam:g} | {A.pct(c['wa'][:, j])} | {A.pct(c['ens'][:, j])} | "
                f"{A.pct(c['diagonal'][:, j])} | {A.pct(c['wa'][:, j] - c['diagonal'][:, j])} | "
                f"{A.pct(c['wa'][:, j] - c['ens'][:, j])} |"
            )
    lines.append("")

    # Best-of-N
    ns = rec["bon"]["n"]
    lines += [
        f"### Best-of-N from the SFT policy ({rec['bon_prompts']} prompts, gold reward of the "
        "response each RM selects)",
        "",
        "KL(BoN ‖ SFT) ≤ log N − (N−1)/N = "
        + ", ".join(f"{k:.2f}" for k in rec["bon"]["kl_bound"])
        + f" for N = {', '.join(map(str, ns))}. Samples are shared across selectors and "
        "noise levels (paired).",
        "",
    ]
    for nk in map(_nkey, rec["noises"]):
        series = _bon_series(rec, nk)
        lines += [
            f"**{nk}% flipped labels**",
            "",
            "| selector | " + " | ".join(f"N={n}" for n in ns) + " |",
            "|---|" + "---|" * len(ns),
        ]
        for label, vals in series.items():
            lines.append(
                f"| {label} | " + " | ".join(A.fmt(vals[:, j], 2) for j in range(len(ns))) + " |"
            )
        gap = series["WARM (WA)"] - series["single RM (mean of members)"]
        lines.append(
            "| WA − single (paired) | "
            + " | ".join(A.fmt(gap[:, j], 2) for j in range(len(ns)))
            + " |"
        )
        gap = series["WARM (WA)"] - series["ENS"]
        lines += [
            "| WA − ENS (paired) | "
            + " | ".join(A.fmt(gap[:, j], 2) for j in range(len(ns)))
            + " |",
            "",
        ]
    plot_bon(rec, "warm_bon.png")
    lines += ["![WARM Best-of-N](alignment/warm_bon.png)", ""]

    # claims W1, W2, W4, W5
    c = {k: np.asarray(v) for k, v in rec["interpolation"]["25"].items()}
    mid = [j for j, lam in enumerate(lams) if 0 < lam < 1]
    diffs = [A.ci(c["wa"][:, j] - c["diagonal"][:, j]) for j in mid]
    w1 = A.verdict([d[0] >= 0 for d in diffs])
    claims.append(
        f"- **W1 (LMC, Obs. 1): {w1}.** Shifted-set accuracy of the interpolated weights minus "
        "the diagonal, 25% noise, λ = "
        + ", ".join(
            f"{lams[j]:g}: {d[0] * 100:+.2f} ± {d[1] * 100:.2f} pt"
            for j, d in zip(mid, diffs, strict=True)
        )
        + " (criterion: ≥ 0 at each λ)."
        + (
            " The curve is almost flat: at this scale the two members' shifted accuracies are "
            "close, so the test has little room."
            if max(abs(d[0]) for d in diffs) < 0.01
            else ""
        )
        + (
            " Every difference is within its CI of 0: no evidence of a barrier either."
            if w1 != "PASS" and all(abs(d[0]) <= d[1] for d in diffs)
            else ""
        )
    )
    id_diffs = {
        nk: A.ci(
            np.asarray(rec["accuracy"][nk]["in_distribution/wa"])
            - np.asarray(rec["accuracy"][nk]["in_distribution/ens"])
        )
        for nk in map(_nkey, rec["noises"])
    }
    half = A.ci(c["wa"][:, lams.index(0.5)] - c["ens"][:, lams.index(0.5)]) if 0.5 in lams else None
    w2_flags = [abs(d[0]) < 0.01 for d in id_diffs.values()]
    w2 = A.verdict(w2_flags)
    claims.append(
        f"- **W2 (WA ≈ ENS to first order, Obs. 2): {w2}.** ID accuracy WA − ENS (M = 4): "
        + ", ".join(
            f"{nk}% noise {d[0] * 100:+.2f} ± {d[1] * 100:.2f} pt" for nk, d in id_diffs.items()
        )
        + (
            f"; on the λ = 0.5 interpolation (shifted, 25%) {half[0] * 100:+.2f} ± "
            f"{half[1] * 100:.2f} pt"
            if half
            else ""
        )
        + " (criterion: |WA − ENS| < 1 pt on ID)."
    )
    acc25 = rec["accuracy"]["25"]
    corr = A.ci(np.asarray(acc25["train_corrupted/wa"]) - np.asarray(acc25["train_corrupted/ens"]))
    shift = A.ci(np.asarray(acc25["shifted/wa"]) - np.asarray(acc25["shifted/ens"]))
    mem = A.ci(
        np.asarray(acc25["train_corrupted/wa"]) - np.asarray(acc25["train_corrupted/member_mean"])
    )
    w4_flags = [corr[0] + corr[1] < 0, shift[0] >= 0]
    claims.append(
        f"- **W4 (25% flipped labels: WA memorises less, generalises better, Obs. 3): "
        f"{A.verdict(w4_flags)}.** Accuracy on the corrupted training pairs (against the flipped "
        f"label) WA − ENS = {corr[0] * 100:+.2f} ± {corr[1] * 100:.2f} pt (criterion: < 0 with a "
        f"clear margin, here: the CI excludes 0), WA − mean member = {mem[0] * 100:+.2f} ± "
        f"{mem[1] * 100:.2f} pt; shifted WA − ENS = {shift[0] * 100:+.2f} ± {shift[1] * 100:.2f} "
        "pt (criterion: ≥ 0)."
    )
    w5_parts, w5_flags = [], []
    for nk in map(_nkey, rec["noises"]):
        s = _bon_series(rec, nk)
        wa = s["WARM (WA)"].mean(axis=0)
        big = [j for j, n in enumerate(ns) if n >= 8]
        beats_best = all(wa[j] >= s["best member (by ID acc.)"].mean(axis=0)[j] for j in big)
        beats_ens = all(wa[j] >= s["ENS"].mean(axis=0)[j] for j in big)
        gap = wa - s["single RM (mean of members)"].mean(axis=0)
        # positive, larger than at N = 8, and more than noise-level (0.01 gold) at the largest N
        grows = bool(big) and gap[-1] > max(gap[big[0]], 0.01)
        largest = max(
            abs(wa[j] - v.mean(axis=0)[j]) for j in big for k, v in s.items() if k != "gold oracle"
        )
        w5_flags += [beats_best, beats_ens, grows]
        w5_parts.append(
            f"{nk}% noise: WA ≥ best member at every N ≥ 8: {'yes' if beats_best else 'no'}, "
            f"WA ≥ ENS at every N ≥ 8: {'yes' if beats_ens else 'no'}, WA − single gap "
            f"{gap[big[0]]:+.3f} at N = 8 → {gap[-1]:+.3f} at N = {ns[-1]} "
            f"({'grows' if grows else 'does not grow to > +0.01'}); the largest |WA − other RM "
            f"selector| at N ≥ 8 is {largest:.3f}"
        )
    claims.append(
        f"- **W5 (BoN with WARM beats single and ENS, Fig. 6-7): {A.verdict(w5_flags)}** (seed "
        "means; see the paired rows of the BoN tables for the CIs). " + "; ".join(w5_parts) + "."
    )
    return lines


def _rl_section(rec: dict, claims: list[str]) -> list[str]:
    cfg, seeds = rec["config"], rec["seeds"]
    updates = np.asarray(rec["updates"])
    curves = {p: {k: np.asarray(v) for k, v in c.items()} for p, c in rec["curves"].items()}
    proxies = rec["proxies"]
    secs = rec["seconds"]
    lines = [
        f"### RL against the proxy ({seeds} seeds, clean-label RMs)",
        "",
        f"{cfg['algorithm']}, beta = {cfg['beta']}, Adam lr = {cfg['learning_rate']}, "
        f"{cfg['batch_size']} prompts × {cfg['num_samples']} samples per update, temperature "
        f"{cfg['temperature']}, {cfg['num_updates']} updates; evaluation every "
        f"{cfg['eval_every']} updates on {cfg['eval_prompts']} fixed held-out prompts (one "
        "sample each). Proxies: the single RM = member 0, WARM = the weight average of the 4 "
        "members"
        + (", ENS = the mean of the 4 members' rewards" if "ens" in proxies else "")
        + f". Wall time: single + WARM {secs['single_warm']:.0f} s ({2 * seeds} runs in one "
        "vmapped compile, compilation included)"
        + (f", ENS {secs['ens']:.0f} s ({seeds} runs)" if "ens" in secs else "")
        + f", win rates {secs['win_rates']:.0f} s.",
        "",
        "| proxy | peak gold | update of the peak (per seed) | first update with gold < peak − "
        f"{DROP} (per seed) | first update with gold < SFT's (per seed) | final proxy | final "
        "gold | final KL to SFT | final spurious / response |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    stats = {}
    for p in proxies:
        c = curves[p]
        per_seed = [peak_and_drop(updates, c["eval/gold"][s]) for s in range(seeds)]
        stats[p] = per_seed
        lines.append(
            f"| {LABELS[p]} | {A.fmt([x[0] for x in per_seed])} | "
            f"{', '.join(str(x[1]) for x in per_seed)} | {_drop_cell([x[2] for x in per_seed])} | "
            f"{_drop_cell(below_sft(updates, c['eval/gold']))} | "
            f"{A.fmt(c['eval/reward'][:, -1], 2)} | {A.fmt(c['eval/gold'][:, -1], 2)} | "
            f"{A.fmt(c['eval/kl_sft'][:, -1], 1)} | {A.fmt(c['eval/spurious'][:, -1], 2)} |"
        )
    lines += [
        "",
        "Curves (mean ± 95% CI over seeds; proxy = the reward of the RM each run optimises, so "
        "proxy columns of different RMs are on different scales):",
        "",
        "| updates | "
        + " | ".join(f"{LABELS[p]} proxy | {LABELS[p]} gold | {LABELS[p]} KL" for p in proxies)
        + " |",
        "|---|" + "---|---|---|" * len(proxies),
    ]
    for j, u in enumerate(updates):
        cells = []
        for p in proxies:
            c = curves[p]
            cells += [
                A.fmt(c["eval/reward"][:, j], 2),
                A.fmt(c["eval/gold"][:, j], 2),
                A.fmt(c["eval/kl_sft"][:, j], 1),
            ]
        lines.append(f"| {u} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [
        "Gold-vs-KL front: the best gold among each run's evaluations within a KL(π ‖ π_sft) "
        "budget (mean ± CI over seeds):",
        "",
        "| proxy | " + " | ".join(f"KL ≤ {k:g}" for k in KL_BUDGETS) + " |",
        "|---|" + "---|" * len(KL_BUDGETS),
    ]
    for p in proxies:
        c = curves[p]
        lines.append(
            f"| {LABELS[p]} | "
            + " | ".join(
                A.fmt(best_within_kl(c["eval/gold"], c["eval/kl_sft"], k), 3) for k in KL_BUDGETS
            )
            + " |"
        )
    lines.append("")
    for p in proxies:
        peak_mean = peak_and_drop(updates, curves[p]["eval/gold"].mean(axis=0))
        stats[p + "_mean_curve"] = peak_mean
    lines.append(
        "On the seed-mean gold curve: "
        + "; ".join(
            f"{LABELS[p]} peaks at {stats[p + '_mean_curve'][0]:.2f} (update "
            f"{stats[p + '_mean_curve'][1]}), falls {DROP} below it at "
            f"{_drop_cell([stats[p + '_mean_curve'][2]])}"
            for p in proxies
        )
        + "."
    )
    lines += [
        "",
        "Gold win rate of A over B (one sample per prompt, the higher gold reward wins, ties "
        "count 1/2; per seed, then mean ± CI). *final*: the policies after the last update, on "
        f"all 512 held-out prompts. *best*: each run's checkpoint with the highest gold on the "
        f"{rec['config']['eval_prompts']} evaluation prompts of the curves (the notes' W7 "
        "protocol), compared on the other 256 held-out prompts.",
        "",
        "| policies | A vs B | win rate of A (%) | per seed | gold A | gold B | CI excludes 50%? |",
        "|---|---|---|---|---|---|---|",
    ]
    for which, table in rec["win_rates"].items():
        for name, wr in table.items():
            a, b = name.split("_vs_")
            m, h = A.ci(wr["win"])
            excl = "yes" if (m - h > 0.5 or m + h < 0.5) else "no"
            lines.append(
                f"| {which} | {LABELS[a]} vs {LABELS[b]} | {A.pct(wr['win'])} | "
                f"{', '.join(f'{x * 100:.1f}' for x in wr['win'])} | {A.fmt(wr[f'gold_{a}'], 2)} | "
                f"{A.fmt(wr[f'gold_{b}'], 2)} | {excl} |"
            )
    if "best_update" in rec:
        lines += [
            "",
            "Best checkpoints (update): "
            + "; ".join(
                f"{LABELS[p]} {', '.join(map(str, u))}" for p, u in rec["best_update"].items()
            )
            + ".",
        ]
    lines.append("")
    plot_rl(rec, "warm_rl.png")
    lines += ["![WARM RL](alignment/warm_rl.png)", ""]

    # claims W6, W7
    peak_s = np.asarray([x[0] for x in stats["single"]])
    peak_w = np.asarray([x[0] for x in stats["warm"]])
    dpk = A.ci(peak_w - peak_s)
    big = updates[-1] + EVAL_EVERY  # "never" counts as after the end of the run

    def drop_of(x):
        return big if x[2] is None else x[2]

    drop_s = [drop_of(x) for x in stats["single"]]
    drop_w = [drop_of(x) for x in stats["warm"]]
    later = sum(dw > ds for dw, ds in zip(drop_w, drop_s, strict=True))
    same = sum(dw == ds for dw, ds in zip(drop_w, drop_s, strict=True))
    final = A.ci(curves["warm"]["eval/gold"][:, -1] - curves["single"]["eval/gold"][:, -1])
    sft_s = [big if x is None else x for x in below_sft(updates, curves["single"]["eval/gold"])]
    sft_w = [big if x is None else x for x in below_sft(updates, curves["warm"]["eval/gold"])]
    sft_later = sum(a > b for a, b in zip(sft_w, sft_s, strict=True))
    sft_same = sum(a == b for a, b in zip(sft_w, sft_s, strict=True))
    front = {
        k: A.ci(
            best_within_kl(curves["warm"]["eval/gold"], curves["warm"]["eval/kl_sft"], k)
            - best_within_kl(curves["single"]["eval/gold"], curves["single"]["eval/kl_sft"], k)
        )
        for k in KL_BUDGETS
    }
    w6_flags = [dpk[0] > 0, np.mean(drop_w) > np.mean(drop_s)]
    w6 = A.verdict(w6_flags)
    if w6 == "PASS" and dpk[0] <= dpk[1] and later <= seeds / 2:
        w6 = "partial"  # right direction, but neither the peak CI nor most seeds support it
    claims.append(
        f"- **W6 (RL with WARM delays hacking, Fig. 1b / 8): {w6}** (M = 4 vs "
        f"one RM; the notes' M ∈ {{2, 6}} and ENS2 rungs were not run). Peak gold WARM − single "
        f"(paired) = {dpk[0]:+.3f} ± {dpk[1]:.3f} (criterion: > 0; the CI "
        f"{'excludes' if abs(dpk[0]) > dpk[1] else 'includes'} 0); the drop of {DROP} below the "
        f"peak comes later with WARM in {later}/{seeds} seeds (same period in {same}), mean "
        f"update {np.mean(drop_w):.0f} vs {np.mean(drop_s):.0f} ('never' counted as "
        f"{big}); gold falls below the SFT policy's later with WARM in {sft_later}/{seeds} seeds "
        f"(same in {sft_same}); final gold WARM − single = {final[0]:+.2f} ± {final[1]:.2f}. "
        "Front (best gold within a KL budget, WARM − single, paired): "
        + ", ".join(f"KL ≤ {k:g}: {d[0]:+.3f} ± {d[1]:.3f}" for k, d in front.items())
        + "."
    )
    parts, verdicts = [], []
    for which in ("best", "final"):
        m, h = A.ci(rec["win_rates"][which]["warm_vs_single"]["win"])
        verdicts.append("PASS" if m - h > 0.5 else ("FAIL" if m <= 0.5 else "partial"))
        parts.append(
            f"{which} policies {m * 100:.1f} ± {h * 100:.1f}% (CI "
            f"{'excludes' if verdicts[-1] == 'PASS' or m + h < 0.5 else 'includes'} 50%)"
        )
    claims.append(
        f"- **W7 (win rate of the WARM policy over the single-RM policy; 79.4% in the paper): "
        f"{verdicts[0]}** on the notes' protocol (each run's gold-best checkpoint), "
        f"{verdicts[1]} for the final policies after {cfg['num_updates']} updates. "
        + "; ".join(parts)
        + f", over {seeds} seeds (criterion: > 50% with the CI excluding 50%)."
    )
    return lines


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rl-steps", type=int, default=600, help="RL updates per run")
    parser.add_argument("--no-ens", action="store_true", help="skip the ENS-proxy RL runs")
    parser.add_argument("--summary", action="store_true", help="only print the section")
    parser.add_argument("--w8", action="store_true", help="run only the W8 beta sweep")
    parser.add_argument("--w3", action="store_true", help="run only the W3 diversity pairs")
    args = A.quick_parser(parser).parse_args()
    if args.quick:
        use_quick(args.quick)
    if not args.summary:
        if args.rl_steps % EVAL_EVERY:
            parser.error(f"--rl-steps must be a multiple of {EVAL_EVERY}")
        start = time.perf_counter()
        w = A.world()
        A.log(start, f"world built in {w.seconds:.0f} s")
        if args.w3:
            records = {"warm_w3": run_w3(w, args.seeds, start)}
        elif args.w8:
            records = {"warm_w8": run_w8(w, args.seeds, args.rl_steps, start)}
        else:
            acc_rec, clean = run_accuracy(w, args.seeds, start)
            A.write_record("warm_accuracy", acc_rec)
            rl_rec = run_rl(w, clean, args.seeds, args.rl_steps, not args.no_ens, start)
            records = {"warm_rl": rl_rec}
        for name, rec in records.items():
            rec["total_seconds"] = time.perf_counter() - start
            A.write_record(name, rec)
        A.log(start, "done")
    text = summary()
    if not args.summary:
        print(f"wrote {A.write_section('alignment_warm.md', text)}")
    print(text)


if __name__ == "__main__":
    main()
