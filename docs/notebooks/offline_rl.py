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
# # Offline RL: a dataset made here, then TD3+BC, TD3-CVAE and Q-sarsa
#
# purerl downloads nothing: it trains an expert with its own agent and loop
# (`purerl.experts.train_expert`), rolls out a D4RL-style level from it
# (`experts.generate_dataset`: random, medium, medium-replay, medium-expert or expert, with D4RL's
# field names), and trains offline agents on that dataset with `purerl.loops.offline`, every seed
# in one compiled program. Scores are D4RL-normalized: 0 is the uniform random policy, 100 the
# expert (both measured when the expert is trained).
#
# **Open in Colab.** purerl is not on PyPI, and this notebook does not know where your copy of
# the repository lives. Open the `.ipynb` in Colab from your GitHub fork (File > Open notebook >
# GitHub, then `docs/notebooks/offline_rl.ipynb` of your fork), or upload it (File > Upload
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
# Parameters (papermill's "parameters" cell). The defaults are a meaningful run on a Colab GPU.
TINY = False  # True: the CI size, a minute or two on a CPU (CI sets PURERL_NOTEBOOK_TINY=1)
ENV = "inverted_double_pendulum"  # an env with an expert recipe (purerl.datasets.PRESETS)
EXPERT_PRESET = None  # None: the recipe of PRESETS[ENV], cached (~/.cache/purerl/experts)
LEVEL = "expert"  # random, medium, medium-replay, medium-expert or expert
DATASET_SIZE = 200_000  # transitions (D4RL-style levels: 200k here, 1M in D4RL)
SEEDS = 5  # seeds per agent, vmapped in one program
UPDATES = 10_000  # gradient updates of the actor-critic (after any pre-training phase)
EVALS = 10  # evaluations per run
EVAL_EPISODES = 10
HIDDEN = (64, 64)  # actor and critic layers (benchmarks/results/offline.md uses 64x64)
PRETRAIN_STEPS = None  # CVAE / Q_sarsa phases before the actor-critic; None: the agents' defaults
CVAE_ALPHA = 10.0  # TD3-CVAE bonus weight (authors' default 1; offline.md: 10 works here)
CVAE_HIDDEN = (256, 256)  # TD3-CVAE's CVAE layers (benchmarks/offline.py; the authors' 750x750)

# %%
if os.environ.get("PURERL_NOTEBOOK_TINY") == "1":
    TINY = True
if TINY:
    from purerl.datasets import ExpertPreset

    # point_mass (a pure-JAX toy env) with an expert of 8192 PPO steps: seconds, not minutes
    ENV, LEVEL, DATASET_SIZE = "point_mass", "medium-expert", 2000
    EXPERT_PRESET = ExpertPreset(
        "ppo",
        8192,
        agent_set=(("hidden", (16, 16)),),
        loop_set=(("num_envs", 16), ("unroll_length", 32), ("eval_every", 2048)),
    )
    SEEDS, UPDATES, EVALS, EVAL_EPISODES, PRETRAIN_STEPS = 2, 200, 2, 2, 100
    HIDDEN, CVAE_HIDDEN = (32, 32), (32, 32)

# %%
import dataclasses
import math
import time

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

import purerl
from purerl import datasets, envs, experts, loops
from purerl.agents import qsarsa, td3_bc, td3_cvae
from purerl.loops import offline, plots

# Compiled programs go to JAX's persistent cache (~/.cache/purerl/jax): a rerun loads them.
purerl.enable_compilation_cache()

# %% [markdown]
# ## The expert
#
# With `EXPERT_PRESET = None`, `experts.get_expert(ENV)` trains the expert of
# `purerl.datasets.PRESETS[ENV]` once and caches it (`purerl generate expert --env ENV` does the
# same); a rerun loads it. The expert is the best evaluation of the run; the *medium* policy is the
# snapshot whose return is closest to 40% of the way from random to expert.

# %%
start = time.perf_counter()
if EXPERT_PRESET is None:
    expert = experts.get_expert(ENV)
else:  # a custom recipe, trained into a folder of the working directory
    expert_dir = os.path.abspath(f"experts/{ENV}")
    experts.train_expert(ENV, expert_dir, preset=EXPERT_PRESET, progress=False, overwrite=True)
    expert = experts.load_expert(expert_dir)
info = expert.info
print(f"expert: {info['agent']} on {ENV} ({time.perf_counter() - start:.0f} s)")
print(f"reference returns: random {info['ref_min_score']:.1f}, expert {info['ref_max_score']:.1f}")

curve = info["curve"]
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(curve["env_steps"], curve["eval_return"], marker="o", label="expert's training run")
ax.axhline(info["ref_max_score"], color="tab:green", ls="--", label="expert (reference)")
ax.axhline(info["ref_min_score"], color="tab:red", ls="--", label="uniform random (reference)")
ax.axvline(curve["env_steps"][info["medium_period"] - 1], color="gray", ls=":", label="medium")
ax.set(xlabel="env steps", ylabel="evaluation return", title=f"{ENV} expert")
ax.legend(fontsize="small")
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## The dataset
#
# `generate_dataset` rolls the level out (vmapped envs, one compiled program) and returns a
# `purerl.datasets.Dataset`: D4RL's arrays (`observations`, `actions`, `rewards`,
# `next_observations`, `terminals`, `timeouts`) and metadata, reference returns included.
# `datasets.save` writes `.npz` or `.hdf5`; `datasets.load` reads it back, as it reads a real
# D4RL `.hdf5`.

# %%
ds = experts.generate_dataset(expert, LEVEL, DATASET_SIZE, seed=0)
path = datasets.save(f"{ENV}-{LEVEL}.npz", ds)
ds = datasets.load(path)
returns = ds.episode_returns()
data_score = float(np.mean(ds.normalized_score(returns)))
print(f"{path}: {len(ds):,} transitions, {ds.num_episodes} episodes")
print(f"normalized score of the data's episodes: {data_score:.1f}")

fig, ax = plt.subplots(figsize=(6, 3))
ax.hist(ds.normalized_score(returns), bins=30)
ax.set(xlabel="normalized episode return (0 random, 100 expert)", ylabel="episodes")
ax.set_title(f"{ENV}-{LEVEL}")
plt.show()

# %% [markdown]
# ## Three offline agents
#
# All three fill the TD3 template (`td3.make_template`) with their own equations:
#
# * **TD3+BC** (Fujimoto & Gu 2021): the actor maximises `lambda Q(s, pi(s)) - (pi(s) - a)^2`.
# * **TD3-CVAE** (Rezaeifar et al. 2022, anti-exploration): a CVAE of the data's actions is trained
#   first; its reconstruction error is a bonus subtracted from the reward and from the actor's
#   objective, so actions unlike the data's look bad.
# * **Q-sarsa AC2**: a SARSA critic of the behaviour policy (trained first, on the data's own next
#   actions) regularises TD3+BC's critic and actor.
#
# The pre-training phases (CVAE, Q_sarsa) count as updates of the same compiled run; the curves
# below start after them.

# %%
AGENTS = {
    "TD3+BC": (td3_bc, {}),
    "TD3-CVAE": (td3_cvae, {"alpha": CVAE_ALPHA, "reward_shift": 0.0, "cvae_hidden": CVAE_HIDDEN}),
    "Q-sarsa AC2": (qsarsa, {"variant": "ac2"}),
}
eval_every = UPDATES // EVALS
refs = (ds.metadata["ref_min_score"], ds.metadata["ref_max_score"])
runs, wall, pretrain = {}, {}, {}
for label, (module, overrides) in AGENTS.items():
    fields = {f.name for f in dataclasses.fields(module.Config)}
    given = {"hidden": HIDDEN, **overrides}
    for name in ("cvae_steps", "sarsa_steps"):  # whole evaluation periods
        if name in fields:
            steps = PRETRAIN_STEPS or getattr(module.Config(), name)
            given[name] = math.ceil(steps / eval_every) * eval_every
    config = module.Config(**given)
    if getattr(config, "auto_reward_scale", False) and np.ptp(ds.rewards) == 0:
        # a constant reward (inverted_pendulum: 1 per step) has no 1 / (max r - min r) scale
        config = dataclasses.replace(config, auto_reward_scale=False, reward_shift=None)
    if hasattr(module, "prepare"):  # dataset-dependent settings (TD3-CVAE's reward scale)
        config = module.prepare(config, ds)
    pretrain[label] = getattr(config, "cvae_steps", 0) + getattr(config, "sarsa_steps", 0)
    loop_config = offline.Config(
        total_steps=pretrain[label] + UPDATES,
        eval_every=eval_every,
        eval_episodes=EVAL_EPISODES,
        progress=not TINY,
    )
    env = envs.make(ENV, backend=ds.metadata["backend"])
    algo = module.make(config, env.spec)
    data = offline.prepare_data(ds, loop_config, getattr(module, "NEEDS_NEXT_ACTION", False))
    train = offline.make_train(algo, env, loop_config, ref_scores=refs)
    start = time.perf_counter()
    _, metrics = loops.run_seeds(train, jax.random.key(0), num_seeds=SEEDS, args=(data,))
    wall[label] = time.perf_counter() - start
    runs[label] = metrics
    print(
        f"{label}: {wall[label]:.0f} s, final normalized score per seed",
        np.round(metrics["eval/normalized"][:, -1], 1),
    )

# %% [markdown]
# ## Normalized scores

# %%
fig, axes = plt.subplots(1, len(runs), figsize=(12, 3.5), sharey=True)
for ax, (label, metrics) in zip(axes, runs.items(), strict=True):
    updates = metrics["updates"][0] - pretrain[label]
    after = updates > 0
    scores = metrics["eval/normalized"][:, after]
    for seed, curve in enumerate(scores):
        ax.plot(updates[after], curve, lw=0.8, alpha=0.5, label=f"seed {seed}")
    ax.plot(updates[after], scores.mean(0), color="black", lw=2, label="mean")
    ax.axhline(data_score, color="gray", ls=":", label="data")
    ax.set(title=label, xlabel="actor-critic updates")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("normalized score (0 random, 100 expert)")
axes[-1].legend(fontsize="small")
fig.suptitle(f"{ENV}-{LEVEL}")
fig.tight_layout()
plt.show()

extra = {
    "pre-training updates": {k: f"{v:,}" for k, v in pretrain.items()},
    "wall time (s, incl. compile)": {k: f"{v:.0f}" for k, v in wall.items()},
}
table = plots.results_table(runs, metric="eval/normalized", extra_columns=extra, precision=1)
display(Markdown(f"Data: {data_score:.1f}\n\n{table}"))

# %% [markdown]
# The command line does the same (`purerl generate dataset --env ENV --level LEVEL`, then
# `purerl train-offline td3_bc --dataset ENV-LEVEL --seeds 5 --steps 10000 --set hidden=64,64`);
# `benchmarks/results/offline.md` has every agent on four levels of three envs.
