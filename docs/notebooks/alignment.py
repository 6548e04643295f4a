# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Alignment in a toy RLHF world: WARM -> WARP -> BOND
#
# A tiny transformer LM answers prompts of a synthetic task whose **gold reward** is known, so
# reward hacking can be measured: a reward model learned from noisy preferences (the *proxy*) can be
# pushed up while the gold reward goes down.
#
# 1. **WARM** (Ramé et al. 2024): pre-train and fine-tune (SFT) the LM, fit `M` reward models to
#    preference pairs with 25% flipped labels (one `vmap`), and average their weights. The
#    `purerl.alignment.pipeline` functions are the stages that `purerl align` runs.
# 2. **WARP** (Ramé et al. 2024): RL against the WARM proxy with a KL penalty to an EMA anchor,
#    `M` runs merged by spherical interpolation of their task vectors (SLERP), then interpolated
#    back towards the SFT weights (LITI), iterated; `pipeline.run_warp`.
# 3. **BOND** (Sessa et al. 2024): J-BOND distils the Best-of-N distribution of the proxy into the
#    policy (`purerl.alignment.bond`, on the `loops.self_sampling` loop).
#
# The last plot puts them on one picture: reward against `KL(pi || pi_sft)`, proxy and gold.
#
# **Open in Colab.** purerl is not on PyPI, and this notebook does not know where your copy of
# the repository lives. Open the `.ipynb` in Colab from your GitHub fork (File > Open notebook >
# GitHub, then `docs/notebooks/alignment.ipynb` of your fork), or upload it (File > Upload
# notebook). Then either set `PURERL_REPO_URL` in the first code cell to your repository's git URL
# (the cell clones it), or upload the repository folder to `/content/purerl`. Choose a GPU runtime
# (Runtime > Change runtime type): the first cell installs purerl with the `cuda` extra on a GPU,
# `tpu` on a TPU, and prints the devices JAX uses. The default sizes are meant for a Colab GPU
# (minutes; not timed there yet); `TINY = True` runs in a minute or two on a CPU, as CI runs it.
#
# Outside Colab, run it where purerl is installed (`pip install -e .` in a clone, see README.md).

# %%
# Setup: on Colab only, clone purerl and install it with the extra for the runtime's accelerator.
import glob
import os
import shutil
import subprocess
import sys

# FILL IN for Colab: the git URL of your purerl repository (for example your GitHub fork's https
# URL). Or set the environment variable PURERL_REPO_URL, or upload the repository folder to
# /content/purerl (then no URL is needed).
PURERL_REPO_URL = os.environ.get("PURERL_REPO_URL", "<the git URL of your purerl repository>")

if "google.colab" in sys.modules:
    repo = "/content/purerl"
    if not os.path.isdir(repo):
        if PURERL_REPO_URL.startswith("<"):
            raise RuntimeError(
                "Set PURERL_REPO_URL in this cell to the git URL of your purerl repository, or "
                "upload the repository folder to /content/purerl, then run this cell again."
            )
        subprocess.run(["git", "clone", "--depth", "1", PURERL_REPO_URL, repo], check=True)
    if shutil.which("nvidia-smi") and subprocess.run(["nvidia-smi"]).returncode == 0:
        extra = "[cuda]"  # JAX's CUDA wheels (the cuda extra in pyproject.toml)
    elif os.environ.get("COLAB_TPU_ADDR") or glob.glob("/dev/accel*"):
        extra = "[tpu]"  # TPU VMs have /dev/accel*; the older TPU-node runtime: COLAB_TPU_ADDR
    else:
        extra = ""  # CPU runtime
    if "jax" in sys.modules:
        print("JAX was imported before this cell: if pip changes its version, restart the session")
    # pyproject.toml pins jax<0.11: on a runtime with a newer JAX, pip installs the pinned one
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", repo + extra], check=True)
    sys.path.insert(0, repo)  # an editable install is on sys.path from the next start; now too

import jax

print("JAX", jax.__version__, "on", jax.devices())
if "google.colab" in sys.modules and extra == "[cuda]" and jax.default_backend() == "cpu":
    print("JAX sees no GPU: the cuda extra installs JAX's CUDA 13 wheels, which need a driver that")
    print("supports CUDA 13 (nvidia-smi above shows the driver's CUDA version)")

# %% tags=["parameters"]
# Parameters (papermill's "parameters" cell). The defaults are a meaningful run on a Colab GPU:
# the world of `purerl align` and of benchmarks/results/alignment*.md.
TINY = False  # True: the CI size, a minute or two on a CPU (CI sets PURERL_NOTEBOOK_TINY=1)
SEED = 0
D_MODEL, LAYERS = 32, 2  # the LM: 2 layers of width 32, 2 heads
PRETRAIN_STEPS, SFT_STEPS, LM_BATCH = 400, 400, 64  # LM updates and sequences per update
PAIRS, NOISE, EVAL_PAIRS = 2000, 0.25, 1000  # preference pairs, flipped labels, pairs per eval set
RM_MEMBERS, RM_STEPS, RM_BATCH = 4, 500, 32  # WARM: reward models, updates each, pairs per update
BON_N, BON_PROMPTS = 16, 200  # Best-of-N from the SFT policy, selected by each reward model
WARP_STEPS = (300, 200, 200)  # RL updates of each WARP iteration (benchmarks: alignment_warp.md)
WARP_RUNS = 2  # M RL runs merged per iteration
RL_BATCH, RL_LR = 32, 3e-4  # prompts per update and Adam step size of every RL / BOND run
EVAL_EVERY = 50  # updates between evaluations
EVAL_PROMPTS = 256  # held-out prompts per evaluation
BOND_STEPS, BOND_SEEDS = 400, 3  # J-BOND updates, seeds (vmapped)
BOND_EVAL_N = 4  # the Best-of-N that J-BOND's evaluation compares with
KV_CACHE = True  # J-BOND samples with the LM's KV cache (False: a smaller, slower program)

# %%
if os.environ.get("PURERL_NOTEBOOK_TINY") == "1":
    TINY = True
if TINY:
    D_MODEL, LAYERS = 16, 1
    PRETRAIN_STEPS, SFT_STEPS, LM_BATCH = 20, 20, 16
    PAIRS, EVAL_PAIRS = 64, 64
    RM_MEMBERS, RM_STEPS, RM_BATCH = 2, 6, 16
    BON_N, BON_PROMPTS = 0, 0  # skipped
    WARP_STEPS, WARP_RUNS, RL_BATCH, EVAL_EVERY, EVAL_PROMPTS = (4, 4), 2, 4, 2, 16
    BOND_STEPS, BOND_SEEDS, KV_CACHE = 4, 2, False

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

import purerl
from purerl import loops
from purerl.alignment import bond, pipeline, reward_model, tasks, warm
from purerl.alignment import policy_gradient as pg
from purerl.loops import self_sampling

# Compiled programs go to JAX's persistent cache (~/.cache/purerl/jax): a rerun loads them.
purerl.enable_compilation_cache()

# %% [markdown]
# ## 1. The world and WARM's reward models
#
# `pipeline.run` runs every stage of `purerl align` in order: pre-training, SFT, preference data,
# the `M` reward models (one `vmap`, diverse learning rates and dropout, WARM sec. 3.3), their
# evaluation, and Best-of-N from the SFT policy. The RL stage of `purerl align` (REINFORCE against
# the proxy) is switched off here (`rl_steps=0`): WARP below is the RL.

# %%
task = tasks.TaskConfig()
lm_config = pipeline.default_lm_config(task, d_model=D_MODEL, num_layers=LAYERS)
rm_config = reward_model.RMConfig(lm=lm_config)
config = pipeline.PipelineConfig(
    seed=SEED,
    task=task,
    lm=lm_config,
    pretrain_steps=PRETRAIN_STEPS,
    sft_steps=SFT_STEPS,
    batch_size=LM_BATCH,
    pairs=PAIRS,
    noise=NOISE,
    eval_pairs=EVAL_PAIRS,
    warm=warm.WarmConfig(rm=rm_config, num_members=RM_MEMBERS, steps=RM_STEPS, batch_size=RM_BATCH),
    bon_n=BON_N,
    bon_prompts=BON_PROMPTS,
    rl_steps=0,
)
results = pipeline.run(config, lambda stage, value, s: print(f"{stage}: {s:.0f} s"))
sft_params, wa_params = results.sft.params, results.wa_params
display(Markdown(pipeline.report(results)))

# %% [markdown]
# WARM's claim (Obs. 2 and Fig. 3): the weight average (WA) of the reward models is as accurate
# as their ensemble (ENS), for the price of one model. Interpolating members 0 and 1:

# %%
curve = results.interpolation
if curve is not None:
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot(curve["lambda"], curve["wa"], marker="o", label="weight average (WA)")
    ax.plot(curve["lambda"], curve["ens"], marker="s", label="prediction ensemble (ENS)")
    ax.plot(curve["lambda"], curve["diagonal"], ls=":", color="gray", label="interpolated accuracy")
    ax.set(xlabel="lambda (member 0 -> member 1)", ylabel="accuracy on shifted pairs")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    plt.show()

# %% [markdown]
# ## 2. WARP against the WARM proxy
#
# The proxy reward is the WA reward model (`pipeline.proxy_reward_fn(..., "wa")`). Each WARP
# iteration runs `WARP_RUNS` REINFORCE / RLOO runs with the KL to an EMA anchor in the reward (one
# compiled, vmapped program), merges them by SLERP and moves the next init 30% of the way to the
# merge (LITI). The final front interpolates from the SFT weights to the last merge.

# %%
reward_fn = pipeline.proxy_reward_fn(lm_config, results.reward_models.params, wa_params, "wa")
rl_config = pg.RLConfig(
    beta=0.1,
    anchor="ema",
    ema_rate=0.01,
    batch_size=RL_BATCH,
    num_samples=2,
    learning_rate=RL_LR,
    log_kl_sft=False,
)
warp_config = pipeline.WarpConfig(
    steps=tuple(WARP_STEPS),
    num_runs=WARP_RUNS,
    rl=rl_config,
    eval_every=EVAL_EVERY,
    num_eval_prompts=EVAL_PROMPTS,
)
start = time.perf_counter()
warp_result = pipeline.run_warp(
    jax.random.key(SEED + 1), sft_params, warp_config, lm_config, task, reward_fn
)
warp_s = time.perf_counter() - start
front = {k: np.asarray(v) for k, v in warp_result.front.items()}
print(f"WARP: {len(WARP_STEPS)} iterations x {WARP_RUNS} runs in {warp_s:.0f} s")
display(
    Markdown(
        pipeline.md_table(
            ["LITI eta", "proxy reward", "gold reward", "KL to SFT"],
            [
                [f"{e:.1f}", f"{r:.3f}", f"{g:.3f}", f"{k:.2f}"]
                for e, r, g, k in zip(
                    front["eta"],
                    front["eval/reward"],
                    front["eval/gold"],
                    front["eval/kl_sft"],
                    strict=True,
                )
            ],
        )
    )
)

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
offset = 0
for i, metrics in enumerate(warp_result.run_metrics):
    updates = offset + np.asarray(metrics["loop/updates"][0])
    for name, ax in zip(("eval/reward", "eval/gold"), axes, strict=True):
        for run in np.asarray(metrics[name]):
            ax.plot(updates, run, color=f"C{i}", lw=1, label=f"iteration {i + 1}")
    offset = updates[-1]
for ax, what in zip(axes, ("proxy reward (WARM WA)", "gold reward"), strict=True):
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize="small")
    ax.set(xlabel="RL updates (iterations one after the other)", ylabel=what)
    ax.grid(alpha=0.3)
fig.suptitle(
    f"WARP: {WARP_RUNS} runs per iteration, each iteration starts from the last LITI point"
)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3. J-BOND: distilling Best-of-N of the proxy
#
# Per prompt, J-BOND draws one policy sample and two samples of an EMA anchor, and pushes the
# policy towards the better of the two anchor samples (forward KL) and away from samples that lose
# to both (backward KL), `bond.make(BondConfig(variant="jbond"))`. Its evaluation compares the
# policy with Best-of-`BOND_EVAL_N` of the SFT policy (`bond.make_evaluate`).

# %%
bond_config = bond.BondConfig(
    variant="jbond",
    n=2,
    batch_size=RL_BATCH,
    learning_rate=1e-3,
    warmup_steps=min(20, BOND_STEPS),
    temperature=rl_config.temperature,  # WARP's sampling temperature: comparable KLs
    use_cache=KV_CACHE,
)
algo = bond.make(bond_config, lm_config, task, reward_fn)
evaluate_fn = bond.make_evaluate(
    bond_config, lm_config, task, reward_fn, num_prompts=EVAL_PROMPTS, n=BOND_EVAL_N
)
train = self_sampling.make_train(
    algo, self_sampling.LoopConfig(num_updates=BOND_STEPS, eval_every=EVAL_EVERY), evaluate_fn
)
start = time.perf_counter()
_, bond_metrics = loops.run_seeds(train, jax.random.key(SEED + 2), BOND_SEEDS, args=(sft_params,))
bond_s = time.perf_counter() - start
print(f"J-BOND: {BOND_SEEDS} seeds x {BOND_STEPS} updates in {bond_s:.0f} s")
last = {k: np.asarray(v)[:, -1] for k, v in bond_metrics.items() if k.startswith("eval/")}
print(
    f"final gold reward {last['eval/gold'].mean():.3f} at KL {last['eval/kl_sft'].mean():.2f}; "
    f"Best-of-{BOND_EVAL_N} of SFT: gold {last['eval/bon_gold'].mean():.3f} "
    f"(KL bound log N - (N-1)/N = {last['eval/kl_bon_ref_bound'].mean():.2f})"
)

# %% [markdown]
# ## Reward against KL
#
# Every point is a policy: its mean reward on held-out prompts against its KL to the SFT policy
# (nats). Going right buys proxy reward; where the gold reward turns down while the proxy keeps
# rising, the proxy is being hacked.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, name, what in zip(
    axes, ("eval/reward", "eval/gold"), ("proxy reward", "gold reward"), strict=True
):
    for i, metrics in enumerate(warp_result.run_metrics):
        kl, reward = np.asarray(metrics["eval/kl_sft"]), np.asarray(metrics[name])
        for run in range(kl.shape[0]):
            ax.plot(
                kl[run],
                reward[run],
                color=f"C{i}",
                lw=0.8,
                alpha=0.6,
                label=f"WARP iteration {i + 1} runs",
            )
    ax.plot(front["eval/kl_sft"], front[name], "k-o", ms=4, label="WARP final front (LITI)")
    kl, reward = np.asarray(bond_metrics["eval/kl_sft"]), np.asarray(bond_metrics[name])
    for run in range(kl.shape[0]):
        ax.plot(
            kl[run], reward[run], color="tab:purple", marker=".", lw=1, label="J-BOND (per seed)"
        )
    bon = np.asarray(bond_metrics[name.replace("eval/", "eval/bon_")])
    ax.scatter(
        [np.asarray(bond_metrics["eval/kl_bon_ref_bound"]).mean()],
        [bon.mean()],
        marker="*",
        s=150,
        color="tab:red",
        label=f"Best-of-{BOND_EVAL_N} of SFT",
        zorder=3,
    )
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize="x-small")
    ax.set(xlabel="KL(pi || pi_sft) (nats)", ylabel=what)
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# `purerl align --out runs/align` runs stage 1 plus REINFORCE against the proxy from the command
# line; `benchmarks/results/alignment*.md` has the measured claims of WARM, WARP and BOND in this
# world, with seeds and confidence intervals.
