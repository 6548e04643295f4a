"""Throughput of whole compiled off-policy runs vs seeds, FLOP/s of the update, and the Python-loop
baseline, on this machine.

For each agent (td3, sac) x network width (256x256, 64x64) x seeds (1, 4, 16), in a fresh subprocess
(so peak RSS is that run's own): compile time, run time, env steps/s and updates/s summed over seeds,
and cost(16 seeds) / cost(1 seed). Then, in the same process: the dense-matmul FLOP/s of this CPU,
the achieved FLOP/s of one agent update (XLA's cost analysis FLOPs / measured time), and a Python loop
that calls our jitted act / env step / replay add+sample / update once per step (the way most users
write it) against the compiled run at equal work.

Usage: python -m benchmarks.throughput [--agents td3,sac] [--steps 1000] [--env inverted_double_pendulum]
Writes benchmarks/results/throughput.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._common import append_rows, header

WIDTHS = {"256x256": (256, 256), "64x64": (64, 64)}


def build(agent: str, width: str, env_name: str, steps: int, warmup: int):
    from purerl import agents, envs
    from purerl.loops import online

    module = agents.get(agent)
    env = envs.make(env_name)
    algo = module.make(module.Config(hidden=WIDTHS[width]), env.spec)
    cfg = online.Config(
        total_steps=steps,
        warmup_steps=warmup,
        eval_every=steps,
        eval_episodes=1,
        on_nonfinite="ignore",
    )
    return env, algo, cfg, online.make_train(algo, env, cfg)


def child(agent: str, width: str, seeds: int, env_name: str, steps: int, warmup: int) -> dict:
    """One configuration: compile, then time the compiled run."""
    env, algo, cfg, train = build(agent, width, env_name, steps, warmup)
    keys = jax.random.split(jax.random.key(0), seeds)
    t0 = time.perf_counter()
    compiled = jax.jit(jax.vmap(train)).lower(keys).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    carry, metrics = compiled(keys)
    jax.block_until_ready(metrics)
    run_s = time.perf_counter() - t0
    updates = int(np.asarray(carry.agent.step).reshape(-1)[0])
    return dict(
        compile_s=compile_s,
        run_s=run_s,
        env_sps=seeds * steps / run_s,
        ups=seeds * updates / run_s,
        updates=updates,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )


def matmul_flops(n: int = 2048, reps: int = 10) -> float:
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    t0 = time.perf_counter()
    for _ in range(reps):
        out = f(a)
    out.block_until_ready()
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def update_flops(agent: str, width: str, env_name: str, reps: int = 200) -> tuple[float, float]:
    """(FLOPs of one update from XLA's cost analysis, achieved FLOP/s over a scan of updates)."""
    from purerl.core.types import Transition

    env, algo, _, _ = build(agent, width, env_name, 1000, 100)
    spec = env.spec
    state = algo.init(jax.random.key(0), spec)
    b = 256
    batch = Transition(
        obs=jnp.ones((b, *spec.obs_shape)),
        action=jnp.zeros((b, *spec.action_shape)),
        reward=jnp.ones(b),
        next_obs=jnp.ones((b, *spec.obs_shape)),
        terminated=jnp.zeros(b),
        truncated=jnp.zeros(b),
    )
    one = jax.jit(algo.update).lower(state, batch).compile()
    flops = float(one.cost_analysis().get("flops", float("nan")))
    batches = jax.tree.map(lambda x: jnp.broadcast_to(x, (reps, *x.shape)), batch)
    # Return the whole final state: returning only the step counter would let XLA drop the updates.
    many = jax.jit(lambda s, bs: jax.lax.scan(algo.update, s, bs)[0])
    jax.block_until_ready(many(state, batches))
    t0 = time.perf_counter()
    jax.block_until_ready(many(state, batches))
    return flops, flops * reps / (time.perf_counter() - t0)


def python_loop(agent: str, width: str, env_name: str, steps: int, warmup: int) -> float:
    """Env steps/s of the usual Python loop over our jitted pieces (one seed, one env)."""
    from purerl.core import replay
    from purerl.core.types import Transition
    from purerl.loops.online import random_actions

    env, algo, cfg, _ = build(agent, width, env_name, steps, warmup)
    spec = env.spec
    act = jax.jit(lambda s, o, k: algo.act(s, o, k)[0])
    step = jax.jit(env.step)
    add = jax.jit(replay.add, donate_argnums=0)  # in place, as a careful user would
    sample = jax.jit(lambda buf, k: replay.sample(buf, k, cfg.batch_size))
    update = jax.jit(algo.update)  # (no donation: the initial target params alias the online ones)
    key = jax.random.key(0)
    state = algo.init(key, spec)
    env_state = env.reset(key)
    example = Transition(
        env_state.obs,
        jnp.zeros(spec.action_shape),
        env_state.reward,
        env_state.obs,
        env_state.terminated,
        env_state.truncated,
    )
    buf = replay.init(example, cfg.buffer_size, 1)

    split = jax.jit(lambda k: tuple(jax.random.split(k, 4)))
    rand = jax.jit(lambda k: random_actions(spec, k, 1)[0])

    def run(n, learn):
        nonlocal key, state, env_state, buf
        for _ in range(n):
            key, k1, k2, k3 = split(key)
            a = act(state, env_state.obs, k1) if learn else rand(k1)
            nxt = step(k2, env_state, a)
            item = Transition(
                env_state.obs, a, nxt.reward, nxt.final_obs, nxt.terminated, nxt.truncated
            )
            buf = add(buf, jax.tree.map(lambda x: x[None], item))
            env_state = nxt
            if learn:
                state, _ = update(state, sample(buf, k3))
        jax.block_until_ready(state)

    run(warmup, learn=False)
    run(5, learn=True)  # compile the learning step
    t0 = time.perf_counter()
    run(steps - warmup, learn=True)
    # Same work as the compiled run's learning phase: one env step + one update per iteration.
    return (steps - warmup) / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--agents", default="td3,sac")
    p.add_argument("--widths", default="256x256,64x64")
    p.add_argument("--seeds", default="1,4,16")
    p.add_argument("--env", default="inverted_double_pendulum")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--child", default="")
    p.add_argument("--skip-runs", action="store_true", help="only FLOP/s and the Python loop")
    args = p.parse_args()
    if args.child:
        agent, width, seeds = args.child.split(":")
        print(json.dumps(child(agent, width, int(seeds), args.env, args.steps, args.warmup)))
        return

    rows, ratios = [], []
    peak = matmul_flops()
    print(f"dense matmul: {peak / 1e9:.1f} GFLOP/s", flush=True)
    for agent in args.agents.split(","):
        for width in args.widths.split(","):
            flops, achieved = update_flops(agent, width, args.env)
            per_seed = {}
            for seeds in [] if args.skip_runs else map(int, args.seeds.split(",")):
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.throughput",
                        "--child",
                        f"{agent}:{width}:{seeds}",
                        "--env",
                        args.env,
                        "--steps",
                        str(args.steps),
                        "--warmup",
                        str(args.warmup),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                r = json.loads(out.stdout.strip().splitlines()[-1])
                per_seed[seeds] = r
                row = (
                    f"| {agent} | {width} | {seeds} | {r['compile_s']:.1f} | {r['run_s']:.1f} | "
                    f"{r['env_sps']:,.0f} | {r['ups']:,.0f} | {r['peak_rss_mb']:,.0f} |"
                )
                print(row, flush=True)
                rows.append(row)
            loop_sps = python_loop(agent, width, args.env, args.steps, args.warmup)
            if args.skip_runs:
                ratios.append(
                    f"| {agent} | {width} | {flops / 1e9:.3f} | {achieved / 1e9:.1f} | "
                    f"{100 * achieved / peak:.0f}% | {loop_sps:,.0f} |"
                )
                print(ratios[-1], flush=True)
                continue
            lo, hi = min(per_seed), max(per_seed)
            cost_ratio = per_seed[hi]["run_s"] / per_seed[lo]["run_s"]
            ratio = per_seed[lo]["env_sps"] / loop_sps
            ratios.append(
                f"| {agent} | {width} | {cost_ratio:.2f} (goal <= {16 if width == '256x256' else 4}) | "
                f"{flops / 1e9:.3f} | {achieved / 1e9:.1f} | {100 * achieved / peak:.0f}% | "
                f"{loop_sps:,.0f} | {per_seed[lo]['env_sps']:,.0f} | {ratio:.1f}x |"
            )
            print(ratios[-1], flush=True)
    if args.skip_runs:
        append_rows(
            "throughput.md",
            header(
                "Update FLOP/s and the Python-loop baseline",
                f"Dense matmul (2048x2048 f32): **{peak / 1e9:.1f} GFLOP/s**.\n\n"
                "| agent | net | GFLOP per update | achieved GFLOP/s | % of matmul | "
                "Python-loop env steps/s (1 seed, 1 update per step) |\n|---|---|---|---|---|---|",
            ),
            ratios,
        )
        return
    head = header(
        f"Compiled off-policy runs on {args.env}: {args.steps} env steps per seed, "
        f"{args.warmup} warm-up, 1 update per step, batch 256",
        "| agent | net | seeds | compile s | run s | env steps/s (all seeds) | updates/s (all seeds) "
        "| peak RSS MB |\n|---|---|---|---|---|---|---|---|",
    )
    append_rows("throughput.md", head, rows)
    head2 = (
        f"\nDense matmul (2048x2048 f32) on this machine: **{peak / 1e9:.1f} GFLOP/s**.\n\n"
        "| agent | net | cost(16 seeds)/cost(1 seed) | GFLOP per update | achieved GFLOP/s | "
        "% of matmul | Python-loop env steps/s (1 seed) | compiled env steps/s (1 seed) | "
        "compiled / Python loop |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    append_rows("throughput.md", head2, ratios)


if __name__ == "__main__":
    main()
