"""One fixed tiny training run (TD3 on probe4_continuous, 8 seeds) with its seeds sharded over 1, 2,
4 and 8 fake CPU devices in one process, and over 2 processes x 2 devices (a coordinator on
127.0.0.1, gloo CPU collectives): compile time, run time, CPU time, env steps/s over all seeds, and
how far each layout's metrics are from the 1-device run's.

Fake CPU devices (``jax_num_cpu_devices``) split one machine's cores, they add none: on a 2-core
machine this table shows the overhead of sharding and of a second process, and that the results do
not change, not the speedup of real devices.

Every layout runs in fresh subprocesses, one layout at a time.

Usage: python -m benchmarks.multidevice [--seeds 8] [--steps 2000]
Writes benchmarks/results/multidevice.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks._common import RESULTS, provenance

# Cross-device communication in the compiled program (HLO op names).
COLLECTIVE = (
    r"\s(?:all-reduce|all-gather|all-to-all|collective-permute|reduce-scatter)(?:-start)?\("
)
LAYOUTS = [(1, 1), (1, 2), (1, 4), (1, 8), (2, 2)]  # (processes, devices per process)


def build(steps: int):
    from purerl import envs
    from purerl.agents import td3
    from purerl.loops import online

    env = envs.make("probe4_continuous")
    algo = td3.make(td3.Config(hidden=(32, 32)), env.spec)
    cfg = online.Config(
        total_steps=steps,
        warmup_steps=steps // 10,
        eval_every=steps // 2,
        batch_size=64,
        buffer_size=steps,
        eval_episodes=2,
    )
    return online.make_train(algo, env, cfg)


def child(
    process_id: int, processes: int, devices: int, port: int, out: str, seeds: int, steps: int
):
    """One process of one layout: compile, run twice, write timings (and process 0: metrics)."""
    from purerl.loops import distributed

    if processes > 1:
        distributed.initialize(
            f"127.0.0.1:{port}", processes, process_id, num_cpu_devices=devices, timeout_s=120
        )
    import jax

    from purerl.loops import shard_seeds

    if processes == 1:
        jax.config.update("jax_num_cpu_devices", devices)
    assert jax.device_count() == processes * devices, jax.devices()
    train = build(steps)
    keys = jax.random.split(jax.random.key(0), seeds)
    if jax.device_count() > 1:
        keys = shard_seeds(keys)
    c0, t0 = time.process_time(), time.perf_counter()
    compiled = jax.jit(jax.vmap(train)).lower(keys).compile()
    compile_s, compile_cpu = time.perf_counter() - t0, time.process_time() - c0
    collectives = len(re.findall(COLLECTIVE, compiled.as_text()))
    runs, cpus = [], []
    for _ in range(2):
        c0, t0 = time.process_time(), time.perf_counter()
        _, metrics = compiled(keys)
        jax.block_until_ready(metrics)
        runs.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    metrics = distributed.gather(metrics)  # a collective: every process calls it
    best = int(np.argmin(runs))
    record = dict(
        collectives=collectives,
        compile_s=compile_s,
        compile_cpu=compile_cpu,
        run_s=runs[best],
        run_cpu=cpus[best],
    )
    with open(os.path.join(out, f"timing.{process_id}.json"), "w") as f:
        json.dump(record, f)
    if process_id == 0:
        np.savez(os.path.join(out, "metrics.npz"), **metrics)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_layout(processes: int, devices: int, seeds: int, steps: int, timeout_s: float) -> dict:
    """Start the layout's processes, wait (killing them all on timeout or failure), collect."""
    out = tempfile.mkdtemp(prefix="multidevice_")
    port = str(free_port())
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_NUM_CPU_DEVICES", "XLA_FLAGS")}
    env["JAX_PLATFORMS"] = "cpu"
    cmd = [sys.executable, "-m", "benchmarks.multidevice", "--child"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                *cmd,
                f"{i},{processes},{devices},{port},{out}",
                f"--seeds={seeds}",
                f"--steps={steps}",
            ],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(processes)
    ]
    try:
        logs = [
            p.communicate(timeout=max(1.0, timeout_s - (time.perf_counter() - t0)))[0]
            for p in procs
        ]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    wall = time.perf_counter() - t0
    if any(p.returncode for p in procs):
        shutil.rmtree(out, ignore_errors=True)
        raise RuntimeError(
            f"layout {processes}x{devices} failed:\n" + "\n".join(x[-3000:] for x in logs)
        )
    timings = []
    for i in range(processes):
        with open(os.path.join(out, f"timing.{i}.json")) as f:
            timings.append(json.load(f))
    metrics = dict(np.load(os.path.join(out, "metrics.npz")))
    shutil.rmtree(out)
    return dict(
        processes=processes,
        devices=devices,
        wall=wall,
        collectives=max(t["collectives"] for t in timings),
        compile_s=max(t["compile_s"] for t in timings),
        compile_cpu=sum(t["compile_cpu"] for t in timings),
        run_s=max(t["run_s"] for t in timings),
        run_cpu=sum(t["run_cpu"] for t in timings),
        metrics=metrics,
    )


def max_diff(a: dict, b: dict) -> tuple[float, bool]:
    """Largest absolute difference over every finite metric, and whether all are bit-identical."""
    diffs, same = [], True
    for k in a:
        x, y = np.asarray(a[k], np.float64), np.asarray(b[k], np.float64)
        same &= np.array_equal(x, y, equal_nan=True)
        finite = np.isfinite(x) & np.isfinite(y)
        diffs.append(np.max(np.abs(x - y)[finite], initial=0.0))
    return float(max(diffs)), bool(same)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        i, processes, devices, port, out = args.child.split(",")
        child(int(i), int(processes), int(devices), int(port), out, args.seeds, args.steps)
        return

    load_before = os.getloadavg()
    results = []
    for processes, devices in LAYOUTS:
        r = run_layout(processes, devices, args.seeds, args.steps, args.timeout)
        print(
            f"{processes} x {devices}: compile {r['compile_s']:.1f} s, run {r['run_s']:.2f} s, "
            f"wall {r['wall']:.0f} s",
            flush=True,
        )
        results.append(r)
    load_after = os.getloadavg()

    base = results[0]
    names = [f"{r['processes']}x{r['devices']}" for r in results]
    rows = []
    for name, r in zip(names, results, strict=True):
        diff, _ = max_diff(r["metrics"], base["metrics"])
        twins = [
            other
            for other, o in zip(names, results, strict=True)
            if other != name and max_diff(r["metrics"], o["metrics"])[1]
        ]
        devices = r["processes"] * r["devices"]
        rows.append(
            f"| {name} | {devices} | {args.seeds // devices} | {r['compile_s']:.1f} "
            f"| {r['run_s']:.2f} | {r['run_cpu']:.2f} | {args.seeds * args.steps / r['run_s']:,.0f} "
            f"| {base['run_s'] / r['run_s']:.2f} | {r['wall']:.0f} | {r['collectives']} "
            f"| {diff:.1e} | {', '.join(twins) or '-'} |"
        )
    cores = os.cpu_count()
    text = (
        "# Seeds sharded over many devices and processes\n\n"
        f"{provenance()}"
        f"- load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after "
        f"(the machine is shared: wall times are noisy; CPU seconds less so)\n\n"
        f"TD3 (hidden 32x32, batch 64) on probe4_continuous, {args.steps:,} env steps per seed, "
        f"{args.seeds} seeds in one `jit(vmap(train))` with the seed axis sharded over every "
        "device of every process (`loops.shard_seeds`; the two-process layout joins through "
        "`loops.distributed.initialize` with a coordinator on 127.0.0.1 and gloo CPU "
        "collectives). Run s: the better of two calls of the compiled run; run CPU s: CPU time of "
        "that call summed over processes; compile s and run s of the slowest process; wall: the "
        "whole layout including Python start-up, imports and compile. Max diff: largest absolute "
        "difference of any metric (every seed, every period) from the 1-device run; bit-identical "
        "to: the other layouts whose metrics are equal to the last bit. Collectives: "
        "cross-device ops (all-reduce, all-gather, ...) in the compiled program.\n\n"
        f"**Caveat.** Fake CPU devices (`jax_num_cpu_devices`) split this machine's {cores} "
        "cores; they add no compute. What the table shows is the overhead of sharding and of a "
        "second process, and that the numbers do not change; it cannot show the speedup of real "
        "devices. On real accelerators each device runs its share of seeds on its own chip, and "
        "nothing crosses devices during the run (the collectives column), so "
        "throughput is expected to grow with the number of devices until each holds one seed.\n\n"
        "| layout (processes x devices each) | devices | seeds per device | compile s | run s "
        "| run CPU s | env steps/s (all seeds) | speed vs 1x1 | wall s | collectives "
        "| max diff vs 1x1 | bit-identical to |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, "multidevice.md")
    with open(path, "w") as f:
        f.write(text)
    print(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
