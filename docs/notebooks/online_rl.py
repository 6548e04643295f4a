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
# # Online RL: PPO and SAC on brax, seeds vmapped
#
# PPO (on-policy, `purerl.loops.on_policy`) and SAC (off-policy, `purerl.loops.online`) learn a
# brax env. Each agent's whole run, every seed included, is one compiled program:
# `loops.run_seeds(train, key, num_seeds)` is `jax.jit(jax.vmap(train))` over the seeds' keys. The
# notebook plots every seed's learning curve and prints a results table.
#
# **Open in Colab.** purerl is not on PyPI, and this notebook does not know where your copy of
# the repository lives. Open the `.ipynb` in Colab from your GitHub fork (File > Open notebook >
# GitHub, then `docs/notebooks/online_rl.ipynb` of your fork), or upload it (File > Upload
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
ENV = "inverted_pendulum"  # a brax env (`purerl envs`); brax's generalized backend by default
SEEDS = 5  # seeds per agent, vmapped in one program
EVAL_EPISODES = 10  # deterministic evaluation episodes per evaluation
PPO_STEPS = 262_144  # env steps per seed
PPO_NUM_ENVS = 32  # parallel envs per seed
PPO_UNROLL = 64  # steps per env per rollout
PPO_EVAL_EVERY = 16_384  # env steps between evaluations (a multiple of PPO_NUM_ENVS * PPO_UNROLL)
SAC_STEPS = 20_000  # env steps per seed (one env, as in the SAC paper)
SAC_EVAL_EVERY = 1_000
SAC_HIDDEN = (256, 256)  # actor and critic layers (SAC paper, App. D)
SAC_BATCH = 256  # minibatch per update (SAC paper)

# %%
if os.environ.get("PURERL_NOTEBOOK_TINY") == "1":
    TINY = True
if TINY:
    # point_mass is a pure-JAX toy env: compiling a brax env's physics takes one to two minutes of
    # CPU, more than CI's budget for this notebook. The code below is the same for any env.
    ENV, SEEDS, EVAL_EPISODES = "point_mass", 2, 2
    PPO_STEPS, PPO_NUM_ENVS, PPO_UNROLL, PPO_EVAL_EVERY = 4096, 16, 32, 1024
    SAC_STEPS, SAC_EVAL_EVERY, SAC_HIDDEN, SAC_BATCH = 500, 250, (32, 32), 64

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

import purerl
from purerl import envs, loops
from purerl.agents import ppo, sac
from purerl.loops import plots

# Compiled programs go to JAX's persistent cache (~/.cache/purerl/jax): a rerun loads them.
purerl.enable_compilation_cache()
env = envs.make(ENV)
print(env.spec)

# %% [markdown]
# ## PPO
#
# `ppo.make(config, spec)` returns the agent as four pure functions (`init`, `act`, `loss`,
# `update`); `loops.on_policy.make_train` turns it and the env into `train(key) -> (final carry,
# metrics)`, one `lax.scan` over the whole run. `run_seeds` compiles it once for all seeds.

# %%
ppo_config = loops.on_policy.Config(
    total_steps=PPO_STEPS,
    num_envs=PPO_NUM_ENVS,
    unroll_length=PPO_UNROLL,
    eval_every=PPO_EVAL_EVERY,
    eval_episodes=EVAL_EPISODES,
    progress=not TINY,
)
ppo_algo = ppo.make(ppo.Config(), env.spec)
train = loops.on_policy.make_train(ppo_algo, env, ppo_config)
start = time.perf_counter()
ppo_carry, ppo_metrics = loops.run_seeds(train, jax.random.key(0), num_seeds=SEEDS)
wall = {"PPO": time.perf_counter() - start}
print(f"PPO: {SEEDS} seeds x {PPO_STEPS:,} env steps in {wall['PPO']:.0f} s (compilation included)")
print("final return per seed:", np.round(ppo_metrics["eval/return"][:, -1], 1))

# %% [markdown]
# ## SAC
#
# The same pattern with the off-policy loop (`loops.online`): a replay buffer in the carry,
# `warmup_steps` of uniform random actions, then one gradient update per env step.

# %%
sac_config = loops.online.Config(
    total_steps=SAC_STEPS,
    warmup_steps=SAC_STEPS // 10,
    buffer_size=SAC_STEPS,
    batch_size=SAC_BATCH,
    eval_every=SAC_EVAL_EVERY,
    eval_episodes=EVAL_EPISODES,
    progress=not TINY,
)
sac_algo = sac.make(sac.Config(hidden=SAC_HIDDEN), env.spec)
train = loops.online.make_train(sac_algo, env, sac_config)
start = time.perf_counter()
sac_carry, sac_metrics = loops.run_seeds(train, jax.random.key(1), num_seeds=SEEDS)
wall["SAC"] = time.perf_counter() - start
print(f"SAC: {SEEDS} seeds x {SAC_STEPS:,} env steps in {wall['SAC']:.0f} s (compilation included)")
print("final return per seed:", np.round(sac_metrics["eval/return"][:, -1], 1))

# %% [markdown]
# ## Learning curves
#
# Metrics come back as arrays `[seeds, evaluations]`. One thin line per seed, the mean in bold;
# then `plots.learning_curve`, the mean with a 95% Student-t interval across seeds.

# %%
runs = {"PPO": ppo_metrics, "SAC": sac_metrics}
fig, axes = plt.subplots(1, len(runs), figsize=(11, 3.8), sharey=True)
for ax, (label, metrics) in zip(axes, runs.items(), strict=True):
    steps = metrics["env_steps"][0]
    returns = metrics["eval/return"]
    for seed, curve in enumerate(returns):
        ax.plot(steps, curve, lw=0.8, alpha=0.5, label=f"seed {seed}")
    ax.plot(steps, returns.mean(0), color="black", lw=2, label="mean")
    ax.set(title=f"{label} on {ENV}", xlabel="env steps (per seed)")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("evaluation return (deterministic policy)")
axes[-1].legend(fontsize="small", loc="best")
fig.tight_layout()
plt.show()

display(plots.learning_curve(runs, title=f"{ENV}: mean over seeds", ylabel="evaluation return"))

# %% [markdown]
# ## Results

# %%
table = plots.results_table(
    runs, extra_columns={"wall time (s, incl. compile)": {k: f"{v:.0f}" for k, v in wall.items()}}
)
display(Markdown(table))

# %% [markdown]
# The same runs from the command line (they also write `metrics.csv`, `curve.png` and a
# checkpoint of every seed's final state):
#
# ```bash
# purerl train ppo --env inverted_pendulum --seeds 5 --steps 262144 --num-envs 32 --loop-set unroll_length=64
# purerl train sac --env inverted_pendulum --seeds 5 --steps 20000 --eval-every 1000
# ```
#
# Each agent's page in the docs maps its paper's equations to the functions used here
# (`ppo.clipped_surrogate`, `sac.critic_loss`, ...); `loops.run_seeds` shards the seeds over
# every device when there are several.
