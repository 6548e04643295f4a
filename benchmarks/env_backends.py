"""Env steps/s of every brax env x backend on this machine (random actions, batch B, one compiled scan).

Usage: python benchmarks/env_backends.py [--envs a,b] [--backends spring,mjx] [--batch 256] [--steps 200]
Writes benchmarks/results/env_backends.md (appends one row per combination).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from benchmarks._common import append_rows, header
from purerl.envs.brax import make_brax


def measure(name, backend, batch, steps):
    env, _, _ = make_brax(name, backend)
    keys = jax.random.split(jax.random.key(0), batch)

    def run(keys):
        state = jax.vmap(env.reset)(keys)

        def body(s, k):
            a = jax.random.uniform(k, (batch, *env.spec.action_shape), minval=-1, maxval=1)
            s = jax.vmap(env.step)(jax.random.split(k, batch), s, a)
            return s, jnp.isfinite(s.obs).all()

        s, ok = jax.lax.scan(body, state, jax.random.split(keys[0], steps))
        return ok.all()

    t0 = time.perf_counter()
    compiled = jax.jit(run).lower(keys).compile()
    compile_s = time.perf_counter() - t0
    compiled(keys).block_until_ready()
    t0 = time.perf_counter()
    ok = bool(compiled(keys))
    dt = time.perf_counter() - t0
    return compile_s, batch * steps / dt, ok


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--envs", default="inverted_double_pendulum,reacher,halfcheetah,walker2d")
    p.add_argument("--backends", default="spring,positional,generalized,mjx")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=200)
    args = p.parse_args()
    rows = []
    for name in args.envs.split(","):
        for backend in args.backends.split(","):
            c, sps, ok = measure(name, backend, args.batch, args.steps)
            row = f"| {name} | {backend} | {args.batch} | {c:.1f} | {sps:,.0f} | {'yes' if ok else 'NO'} |"
            print(row, flush=True)
            rows.append(row)
    append_rows(
        "env_backends.md",
        header(
            "Env throughput per brax backend",
            "| env | backend | batch | compile s | env steps/s | finite obs |\n|---|---|---|---|---|---|",
        ),
        rows,
    )


if __name__ == "__main__":
    main()
