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
# # Imitation: behaviour cloning from a few subsampled demonstrations
#
# An expert is trained here (`purerl.experts`), a handful of its episodes are kept the GAIL / PWIL
# way (every 20th transition from a random offset, `experts.generate_demos(..., subsample=20)`), and
# BC (`purerl.agents.bc`) learns from 1, 4 or 16 of them with `purerl.loops.offline`, every seed in
# one compiled program. Scores are normalized: 0 is the uniform random policy, 100 the expert.
#
# **PWIL is not in purerl yet.** PWIL (Dadashi et al. 2021: an online agent rewarded by a
# Wasserstein distance to *one* demonstration) will be added to this notebook when it lands, next
# to BC on the same demonstrations; until then, this notebook is BC only.
#
# **Open in Colab.** purerl is not on PyPI, and this notebook does not know where your copy of
# the repository lives. Open the `.ipynb` in Colab from your GitHub fork (File > Open notebook >
# GitHub, then `docs/notebooks/imitation.ipynb` of your fork), or upload it (File > Upload
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
DEMO_COUNTS = (1, 4, 16)  # demonstrations (whole expert episodes) BC learns from, one run each
SUBSAMPLE = 20  # keep every 20th transition of each episode (GAIL and PWIL's setting)
SEEDS = 5  # seeds per run, vmapped in one program
UPDATES = 10_000  # gradient updates
EVALS = 10  # evaluations per run
EVAL_EPISODES = 10

# %%
if os.environ.get("PURERL_NOTEBOOK_TINY") == "1":
    TINY = True
if TINY:
    from purerl.datasets import ExpertPreset

    # point_mass (a pure-JAX toy env) with an expert of 8192 PPO steps: seconds, not minutes
    ENV = "point_mass"
    EXPERT_PRESET = ExpertPreset(
        "ppo",
        8192,
        agent_set=(("hidden", (16, 16)),),
        loop_set=(("num_envs", 16), ("unroll_length", 32), ("eval_every", 2048)),
    )
    DEMO_COUNTS, SEEDS, UPDATES, EVALS, EVAL_EPISODES = (4,), 2, 200, 2, 2

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

import purerl
from purerl import datasets, envs, experts, loops
from purerl.agents import bc
from purerl.loops import offline, plots

# Compiled programs go to JAX's persistent cache (~/.cache/purerl/jax): a rerun loads them.
purerl.enable_compilation_cache()

# %% [markdown]
# ## The expert and its demonstrations
#
# With `EXPERT_PRESET = None`, `experts.get_expert(ENV)` trains the expert of
# `purerl.datasets.PRESETS[ENV]` once and caches it (shared with `purerl generate` and the offline
# notebook); a rerun loads it. `generate_demos` rolls out whole episodes of the deterministic
# expert, then subsamples each (`purerl generate demos --env ENV --episodes N --subsample 20` writes
# the same to a file).

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

demos = experts.generate_demos(expert, max(DEMO_COUNTS), seed=0, subsample=SUBSAMPLE)
print(f"{demos.num_episodes} demonstrations, {len(demos)} transitions after subsampling")
print("their normalized returns:", np.round(demos.normalized_score(demos.episode_returns()), 1))


def first_demos(dataset: datasets.Dataset, count: int) -> datasets.Dataset:
    """The first ``count`` demonstrations (``generate_demos`` numbers episodes 0, 1, ...)."""
    keep = dataset.episode_ids < count
    arrays = {name: array[keep] for name, array in dataset.arrays().items()}
    return datasets.validate(arrays, {**dataset.metadata, "episodes": count})


# %% [markdown]
# ## BC from 1, 4 and 16 demonstrations
#
# BC regresses the actions on the (dataset-normalized) observations; the offline loop evaluates the
# deterministic policy in the env every `UPDATES // EVALS` updates. One compiled program per
# demonstration count (the data's size is part of the program's shape), every seed in it.

# %%
env = envs.make(ENV, backend=demos.metadata["backend"])
algo = bc.make(bc.Config(), env.spec)
refs = (demos.metadata["ref_min_score"], demos.metadata["ref_max_score"])
runs, wall, sizes = {}, {}, {}
for count in DEMO_COUNTS:
    subset = first_demos(demos, count)
    label = f"BC, {count} demo{'s' * (count != 1)}"
    loop_config = offline.Config(
        total_steps=UPDATES,
        batch_size=min(256, len(subset)),  # TD3+BC's 256, or the whole set when smaller
        eval_every=UPDATES // EVALS,
        eval_episodes=EVAL_EPISODES,
        progress=not TINY,
    )
    data = offline.prepare_data(subset, loop_config)
    train = offline.make_train(algo, env, loop_config, ref_scores=refs)
    start = time.perf_counter()
    _, runs[label] = loops.run_seeds(train, jax.random.key(0), num_seeds=SEEDS, args=(data,))
    wall[label], sizes[label] = time.perf_counter() - start, len(subset)
    print(
        f"{label} ({len(subset)} transitions): {wall[label]:.0f} s, final normalized score",
        np.round(runs[label]["eval/normalized"][:, -1], 1),
    )

# %% [markdown]
# ## Scores

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
for label, metrics in runs.items():
    scores = metrics["eval/normalized"]
    (line,) = left.plot(metrics["updates"][0], scores.mean(0), lw=2, label=label)
    for curve in scores:
        left.plot(metrics["updates"][0], curve, lw=0.6, alpha=0.4, color=line.get_color())
left.set(xlabel="gradient updates", ylabel="normalized score (0 random, 100 expert)")
left.set_title("learning curves (thin: seeds)")
left.legend(fontsize="small")
counts = np.array(DEMO_COUNTS)
finals = np.array([m["eval/normalized"][:, -1] for m in runs.values()])  # [counts, seeds]
for seed in range(finals.shape[1]):
    right.scatter(counts, finals[:, seed], color="tab:blue", alpha=0.5, s=14)
right.plot(counts, finals.mean(1), color="black", marker="o", label="mean over seeds")
right.axhline(100, color="tab:green", ls="--", label="expert")
right.set(xscale="log", xlabel="demonstrations", ylabel="final normalized score")
right.set_xticks(counts, [str(c) for c in counts])
right.set_title(f"BC on {ENV}, 1 of every {SUBSAMPLE} transitions")
right.legend(fontsize="small")
for ax in (left, right):
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

extra = {
    "transitions": sizes,
    "wall time (s, incl. compile)": {k: f"{v:.0f}" for k, v in wall.items()},
}
display(Markdown(plots.results_table(runs, "eval/normalized", extra_columns=extra, precision=1)))
