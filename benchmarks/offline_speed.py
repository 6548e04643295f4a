"""Gradient updates per second of TD3+BC and TD3-CVAE: purerl (JAX) next to PyTorch, same run.

The problem is halfcheetah-sized (obs dim 17, action dim 6; no env is built), actor and twin critics
are 256x256 MLPs, batch 256, and every update draws its batch from a fixed dataset of 100k random
transitions already on the device (``randint`` indexing, as ``purerl.loops.offline`` does).
TD3-CVAE is timed in its TD3 phase (``cvae_steps=0``: the CVAE counts as trained and frozen) with
the agent's default CVAE (750x750 encoder and decoder, latent 12 as measured in results/offline_speed.md, pinned; the authors' ``VAE(M=750)``), so
each update also pays the bonus's CVAE forward at (s', a~') and, every 2nd update, its forward and
backward at (s, pi(s)). The CVAE is randomly initialised: its weights do not change the cost.

* JAX: ``jit(vmap over seeds of lax.scan of K updates)``, the state carried from call to call
  (donated). Compile time (lower + compile) is reported on its own; updates/s is the median of 3
  timed calls after one warm-up call, ``block_until_ready``, summed over seeds.
* PyTorch (CPU, ``torch.set_num_threads(os.cpu_count())`` unless ``--torch-threads``): the same
  updates written plainly below (TD3+BC: Fujimoto & Gu 2021; TD3-CVAE TD3 phase: Rezaeifar et
  al. 2022), one ``nn.Module`` set per seed, seeds updated one after another in a Python loop,
  the batch sampled with ``torch.randint`` from a tensor dataset. Same number of updates, same
  timing rule (median of 3 calls after a warm-up call); no compile step.

Both frameworks do the same arithmetic per update: critic step every update, actor step and Polyak
averaging every 2nd update, gradients only for the network being trained (the PyTorch actor step
freezes the critic, as the JAX ``grad`` w.r.t. the actor does).

Usage:
    python -m benchmarks.offline_speed [--updates 500] [--seeds 1 8] [--algos td3_bc td3_cvae]
        [--no-torch] [--torch-threads N] [--out offline_speed.md | --out -]

``--updates N``: timed updates per seed per call at 1 seed; with S > 1 seeds each seed does
``2 * N / S`` (rounded to an even number) per call, so a call at 8 seeds does 4x the updates of a
call at 1 seed. Run it on an otherwise idle machine: with every core busy elsewhere, PyTorch's
OpenMP threads (one per core by default) wait on each other and its numbers collapse. Appends the
table to ``benchmarks/results/<out>`` (``--out -``: print only).
torch is an optional, benchmark-only dependency; without it only the JAX rows are measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp

from benchmarks._common import append_rows, header

OBS, ACT = 17, 6  # halfcheetah
HIDDEN = (256, 256)
BATCH = 256
DATASET = 100_000
TIMED_CALLS = 3
ALGOS = ("td3_bc", "td3_cvae")
LABELS = {"td3_bc": "TD3+BC", "td3_cvae": "TD3-CVAE (TD3 phase)"}


def updates_per_seed(updates: int, seeds: int) -> int:
    """K, the updates each seed does per timed call (even, so both policy-delay branches count)."""
    if seeds == 1:
        return updates
    k = max(2, round(2 * updates / seeds))
    return k + (k % 2)


def time_calls(call: Callable[[], None]) -> float:
    """One warm-up call, then the median wall time of TIMED_CALLS calls."""
    call()
    times = []
    for _ in range(TIMED_CALLS):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ----------------------------------------------------------------------------------------- JAX


def jax_dataset(key: jax.Array):
    from purerl.core.types import Transition

    ks = jax.random.split(key, 4)
    return Transition(
        obs=jax.random.normal(ks[0], (DATASET, OBS)),
        action=jax.random.uniform(ks[1], (DATASET, ACT), minval=-1.0, maxval=1.0),
        reward=jax.random.normal(ks[2], (DATASET,)),
        next_obs=jax.random.normal(ks[3], (DATASET, OBS)),
        terminated=jnp.zeros((DATASET,), jnp.float32),
        truncated=jnp.zeros((DATASET,), jnp.float32),
    )


def jax_algo(name: str):
    from purerl.agents import td3_bc, td3_cvae
    from purerl.core.types import EnvSpec

    spec = EnvSpec(obs_shape=(OBS,), action_shape=(ACT,), name="halfcheetah-sized")
    if name == "td3_bc":
        return td3_bc.make(td3_bc.Config(hidden=HIDDEN), spec)
    # cvae_steps=0: every update is a TD3-phase update with the (frozen) CVAE's bonus.
    return td3_cvae.make(td3_cvae.Config(hidden=HIDDEN, cvae_steps=0, latent_size=12), spec)


def bench_jax(name: str, seeds: int, k: int) -> dict:
    algo = jax_algo(name)
    data = jax_dataset(jax.random.key(1))
    keys = jax.random.split(jax.random.key(0), seeds)
    sample_keys = jax.random.split(jax.random.key(2), seeds)
    # The step counter is the same for every seed: keep it unbatched under vmap so the policy
    # delay stays a real branch (lax.cond) instead of computing the actor update every step.
    axes = jax.tree.map(lambda _: 0, jax.eval_shape(algo.init, keys[0]))._replace(step=None)

    def one_seed(state, key, data):
        def body(carry, _):
            state, key = carry
            key, sample_key = jax.random.split(key)
            idx = jax.random.randint(sample_key, (BATCH,), 0, DATASET)
            batch = jax.tree.map(lambda x: x[idx], data)
            state, _ = algo.update(state, batch)
            return (state, key), None

        (state, key), _ = jax.lax.scan(body, (state, key), None, length=k)
        return state, key  # the whole state, so XLA cannot drop any of the updates

    init = jax.jit(jax.vmap(algo.init, out_axes=axes))
    run = jax.jit(
        jax.vmap(one_seed, in_axes=(axes, 0, None), out_axes=(axes, 0)), donate_argnums=(0, 1)
    )
    state = jax.block_until_ready(init(keys))
    t0 = time.perf_counter()
    compiled = run.lower(state, sample_keys, data).compile()
    compile_s = time.perf_counter() - t0
    carry = [state, sample_keys]

    def call():
        carry[0], carry[1] = jax.block_until_ready(compiled(carry[0], carry[1], data))

    seconds = time_calls(call)
    return dict(compile_s=compile_s, ups=seeds * k / seconds)


# ------------------------------------------------------------------------------------- PyTorch


def torch_bench_fns():
    """The PyTorch implementation; built inside a function so the module imports without torch."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    def mlp(sizes, out_act=None):
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        if out_act is not None:
            layers.append(out_act)
        return nn.Sequential(*layers)

    class Critic(nn.Module):
        def __init__(self):
            super().__init__()
            self.q1 = mlp([OBS + ACT, *HIDDEN, 1])
            self.q2 = mlp([OBS + ACT, *HIDDEN, 1])

        def forward(self, s, a):
            sa = torch.cat([s, a], dim=-1)
            return self.q1(sa).squeeze(-1), self.q2(sa).squeeze(-1)

        def first(self, s, a):
            return self.q1(torch.cat([s, a], dim=-1)).squeeze(-1)

    class CVAE(nn.Module):
        """Encoder [s, a] -> 750 -> 750 -> (mu, log_var), decoder [s, z] -> 750 -> 750 -> tanh."""

        def __init__(self, hidden=750, latent=12):
            super().__init__()
            self.latent = latent
            self.encoder = mlp([OBS + ACT, hidden, hidden, 2 * latent])
            self.decoder = mlp([OBS + latent, hidden, hidden, ACT], nn.Tanh())

        def bonus(self, s, a):
            h = self.encoder(torch.cat([s, a], dim=-1))
            mu, log_var = h[:, : self.latent], h[:, self.latent :].clamp(-4.0, 15.0)
            z = mu + torch.exp(log_var) * torch.randn_like(mu)  # std = exp(log_var), as the code
            a_hat = self.decoder(torch.cat([s, z], dim=-1))
            return ((a_hat - a) ** 2).mean(dim=-1) / ACT

    class Agent:
        """TD3+BC (``cvae=False``) or the TD3 phase of TD3-CVAE (``cvae=True``, alpha = 1)."""

        def __init__(self, cvae: bool):
            lr = 1e-4 if cvae else 3e-4
            self.actor = mlp([OBS, *HIDDEN, ACT], nn.Tanh())
            self.critic = Critic()
            self.actor_t = mlp([OBS, *HIDDEN, ACT], nn.Tanh())
            self.critic_t = Critic()
            self.actor_t.load_state_dict(self.actor.state_dict())
            self.critic_t.load_state_dict(self.critic.state_dict())
            for p in [*self.actor_t.parameters(), *self.critic_t.parameters()]:
                p.requires_grad_(False)
            self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=lr)
            self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=lr)
            self.cvae = CVAE().requires_grad_(False) if cvae else None  # trained and frozen
            self.step = 0

        def update(self, s, a, r, s2, done, discount=0.99, tau=0.005, alpha=1.0):
            self.step += 1
            with torch.no_grad():
                noise = (0.2 * torch.randn_like(a)).clamp(-0.5, 0.5)
                a2 = (self.actor_t(s2) + noise).clamp(-1.0, 1.0)
                q1_t, q2_t = self.critic_t(s2, a2)
                next_v = torch.min(q1_t, q2_t)
                if self.cvae is not None:
                    next_v = next_v - alpha * self.cvae.bonus(s2, a2)
                y = r + discount * (1.0 - done) * next_v
            q1, q2 = self.critic(s, a)
            critic_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
            self.critic_opt.zero_grad()
            critic_loss.backward()
            self.critic_opt.step()
            if self.step % 2:
                return
            self.critic.requires_grad_(False)  # gradients for the actor only
            pi = self.actor(s)
            q = self.critic.first(s, pi)
            if self.cvae is None:
                lam = 2.5 / q.abs().mean().detach()
                actor_loss = -lam * q.mean() + F.mse_loss(pi, a)
            else:
                actor_loss = -(q - alpha * self.cvae.bonus(s, pi)).mean()
            self.actor_opt.zero_grad()
            actor_loss.backward()
            self.actor_opt.step()
            self.critic.requires_grad_(True)
            with torch.no_grad():
                for net, target in ((self.actor, self.actor_t), (self.critic, self.critic_t)):
                    for p, tp in zip(net.parameters(), target.parameters(), strict=True):
                        tp.lerp_(p, tau)

    def dataset():
        g = torch.Generator().manual_seed(1)
        return (
            torch.randn(DATASET, OBS, generator=g),
            torch.rand(DATASET, ACT, generator=g) * 2.0 - 1.0,
            torch.randn(DATASET, generator=g),
            torch.randn(DATASET, OBS, generator=g),
            torch.zeros(DATASET),
        )

    def bench(name: str, seeds: int, k: int) -> dict:
        torch.manual_seed(0)
        data = dataset()
        agents = [Agent(cvae=name == "td3_cvae") for _ in range(seeds)]

        def call():
            for agent in agents:  # seeds one after another, the usual way
                for _ in range(k):
                    idx = torch.randint(DATASET, (BATCH,))
                    agent.update(*(x[idx] for x in data))

        seconds = time_calls(call)
        return dict(compile_s=None, ups=seeds * k / seconds)

    return torch, bench


# ---------------------------------------------------------------------------------------- main


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--updates", type=int, default=500, help="timed updates per call at 1 seed")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 8])
    p.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch rows")
    p.add_argument(
        "--torch-threads",
        type=int,
        default=os.cpu_count() or 1,
        help="torch.set_num_threads (default: all cores; on a machine busy with other work, "
        "fewer threads than cores avoids OpenMP threads waiting on each other)",
    )
    p.add_argument("--out", default="offline_speed.md", help="results file; '-': do not write")
    args = p.parse_args()

    torch_bench, torch_note = None, "PyTorch rows skipped (--no-torch)"
    if not args.no_torch:
        try:
            torch, torch_bench = torch_bench_fns()
            torch.set_num_threads(args.torch_threads)
            threads = torch.get_num_threads()
            torch_note = f"torch {torch.__version__}, CPU, torch.get_num_threads() = {threads}"
        except ImportError:
            torch_note = (
                "torch is not installed: PyTorch rows skipped "
                "(`pip install torch --index-url https://download.pytorch.org/whl/cpu`)"
            )
            print(torch_note, flush=True)

    table_head = (
        "| algo | seeds | framework | compile s | updates/s | ratio |\n|---|---|---|---|---|---|"
    )
    print(table_head, flush=True)
    rows = []
    for name in args.algos:
        for seeds in args.seeds:
            k = updates_per_seed(args.updates, seeds)
            j = bench_jax(name, seeds, k)
            t = torch_bench(name, seeds, k) if torch_bench else None
            ratio = f"{j['ups'] / t['ups']:.2f}x" if t else "n/a"
            new = [
                f"| {LABELS[name]} | {seeds} | JAX (purerl) | {j['compile_s']:.1f} | "
                f"{j['ups']:,.0f} | {ratio} |"
            ]
            if t:
                new.append(f"| {LABELS[name]} | {seeds} | PyTorch | - | {t['ups']:,.0f} | 1x |")
            for row in new:
                print(row, flush=True)
            rows.extend(new)

    if args.out != "-":
        ks = ", ".join(f"{s} seed(s): {updates_per_seed(args.updates, s)}" for s in args.seeds)
        head = header(
            "Offline update speed: TD3+BC and TD3-CVAE (TD3 phase), JAX vs PyTorch",
            f"- {torch_note}\n"
            f"- obs 17, action 6 (halfcheetah-sized), actor/critics {HIDDEN[0]}x{HIDDEN[1]}, "
            f"TD3-CVAE's CVAE 750x750 (default, frozen), batch {BATCH}, batches drawn from "
            f"{DATASET:,} random transitions\n"
            f"- updates per seed per timed call: {ks}; updates/s summed over seeds, median of "
            f"{TIMED_CALLS} calls after a warm-up call; ratio = JAX updates/s / PyTorch updates/s; "
            "JAX seeds vmapped in one compiled scan, PyTorch seeds one after another\n\n"
            + table_head,
        )
        print("wrote", append_rows(args.out, head, rows))


if __name__ == "__main__":
    main()
