"""The ``purerl`` command line.

    purerl train td3 --env point_mass --seeds 4 --steps 20000 --out runs/td3_pm \\
        --set hidden=64,64 --set policy_noise=0.1 --loop-set batch_size=128
    purerl agents        # one line per agent
    purerl agents sac    # sac's Config fields: type, default and where the default comes from
    purerl train --config runs/td3_pm --set tau=0.01 --out runs/td3_tau   # rerun, one change
    purerl envs          # one line per env
    purerl generate expert  --env halfcheetah                     # train + cache an expert
    purerl generate dataset --env halfcheetah --level medium      # D4RL-style level (cached)
    purerl generate demos   --env halfcheetah --episodes 10 --subsample 20 --out demos.npz
    purerl datasets      # named datasets, cached or not
    purerl train-offline td3_bc --dataset halfcheetah-medium --seeds 5 --steps 100000 --out runs/x
    purerl align --out runs/align --rms 4 --noise 0.25     # toy RLHF world + WARM reward models

``train-offline`` trains any offline agent (or an online one whose update takes single-transition
batches, e.g. plain TD3) on a named dataset or an .npz/.hdf5 file with ``loops.offline``, evaluates
in the dataset's env and reports D4RL-normalized scores when the dataset stores its references.

``train`` builds the agent's ``Config`` with ``--set key=value`` overrides (values parsed by the
field's type: ``64,64`` for a tuple of ints, ``true``/``false`` for a bool, ``none`` for an optional
field), picks the loop named by the agent module's ``LOOP`` (``online`` or ``on_policy``) with
``--loop-set`` overrides, runs all seeds in one compiled ``jit(vmap(...))`` of one eval period,
called once per period (``loops.common.run_periods``: the same numbers as one scan over all periods,
and a program JAX's persistent compilation cache can store, see ``purerl.core.compilation``; the
progress bar is fed between calls), prints ``compiling ... N s (tracing T s, XLA X s)`` before
training, and writes to ``--out``:
``metrics.csv`` (one row per seed and eval period), ``curve.png`` (mean and 95% t-interval across
seeds), ``config.json`` (agent, loop and env settings plus package versions) and ``checkpoint/`` (the
final carry of every seed, replay buffer included; ``loops.checkpoint.restore`` reads it). It prints a
results table: final eval return mean ± 95% CI and the wall time including compilation.

The compiling commands (train, train-offline, generate, align) turn on JAX's persistent compilation
cache at ``<purerl cache>/jax`` first; ``--no-compilation-cache`` or ``PURERL_NO_COMPILATION_CACHE=1``
leave it off.

Loop settings that are not given explicitly are scaled to ``--steps`` and printed: ``eval_every``
is about ``min(default, steps / 10)`` (a divisor of ``steps`` and a multiple of the env steps per
iteration), and for the online loop ``warmup_steps = min(default, steps // 10)`` and
``buffer_size = min(default, steps)`` (a bigger buffer would never fill). The online loop's
``n_step`` follows the agent's ``n_step`` when it has one.

``align`` runs the toy RLHF pipeline of ``purerl.alignment`` (docs/alignment/index.md): pre-train
and SFT a tiny LM on the synthetic task, collect preference pairs with ``--noise`` flipped labels,
fine-tune ``--rms`` reward models in one vmap from a shared linear-probed head (WARM), and report the
pairwise accuracy of each member, of their weight average (WA) and of their prediction ensemble
(ENS) on in-distribution, shifted and (corrupted / clean) training pairs, the WA-vs-ENS interpolation
between members 0 and 1, and the gold reward of Best-of-N selection from the SFT policy by each.
Then the policy stage (``--rl-steps`` updates, 0 skips it) RL-trains the SFT policy with REINFORCE /
RLOO and a KL penalty against the WARM proxy (``--rl-proxy``) and reports proxy reward, gold reward,
KL to SFT and the spurious-token count along the run, and the gold win rate against SFT.
It writes ``params.npz`` (pretrained, SFT, member, WA and policy parameters, keys ``stage/path``),
``summary.json`` and ``summary.md`` into ``--out``.

``--out`` must be a new or empty directory; ``--overwrite`` first clears a non-empty one (every
entry inside it, after the arguments are validated; never ``/``, the home directory, the current
directory or a directory above them, and never a file). ``purerl --version`` prints the version.

Exit status (for scripts and sweeps):

* 0: done.
* 1: internal error (a bug in purerl or a library; Python prints the traceback).
* 2: usage or bad input (unknown agent/env/override key, unparsable value, invalid config, bad
  dataset, non-empty ``--out`` without ``--overwrite``): one line on stderr, nothing trained.
* 3: diverged: NaN or inf appeared in an observation, a reward, a loss/metric or the parameters
  during training (every loop checks them inside the compiled run and freezes before the bad step;
  ``loops.common.Diverged``): one line on stderr naming the seed, the step, the quantity and the
  likely cause. ``train`` and ``train-offline`` keep ``metrics.csv`` and ``config.json`` up to it.

Every JSON file written (``config.json``, ``summary.json``, expert and dataset metadata) is valid
JSON: NaN and inf are written as ``null`` and listed under ``nonfinite_as_null``
(``purerl.core.jsonio``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import os
import platform
import sys
import time
import types
import typing
from collections.abc import Sequence
from typing import Any

EXIT_OK = 0
EXIT_INTERNAL = 1  # an uncaught exception: Python's own exit status, with the traceback
EXIT_USAGE = 2
EXIT_DIVERGED = 3
EPILOG = """exit status:
  0  done
  1  internal error (a bug: a traceback is printed)
  2  usage or bad input (one line on stderr; nothing trained)
  3  diverged: NaN/inf in an observation, reward, loss or the parameters during training (one line
     naming seed, step, quantity and likely cause; train/train-offline keep metrics.csv up to it)

examples:
  purerl train ppo --env inverted_pendulum --seeds 3 --steps 131072 --out runs/ppo
  purerl train dqn --env cartpole --steps 50000 --out runs/dqn --overwrite
  purerl train-offline td3_bc --dataset halfcheetah-medium --steps 100000 --out runs/td3bc
  purerl align --out runs/align"""
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print the usage block and exit itself
        raise UsageError(f"{message} (see '{self.prog} --help')")


# ---------------------------------------------------------------------------------------------------
# Overrides: "key=value" parsed by the dataclass field's type.


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"comma-separated {_type_name(args[0])}s (e.g. 64,64)"
        return f"{len(args)} comma-separated values"
    if origin in (typing.Union, types.UnionType):
        return " or ".join("none" if a is type(None) else _type_name(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, args))
    return getattr(tp, "__name__", str(tp))


def parse_value(text: str, tp: Any) -> Any:
    """Parse a command-line string as type ``tp`` (int, float, bool, str, tuples, Optional,
    Literal); raises ``ValueError`` if it does not fit."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    text = text.strip()
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.lower() in ("none", "null"):
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return parse_value(text, arg)
            except ValueError:
                pass
        raise ValueError(f"expected {_type_name(tp)}")
    if origin is tuple:
        parts = [p for p in text.strip("()[] ").split(",") if p.strip()]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(parse_value(p, args[0]) for p in parts)
        if len(parts) != len(args):
            raise ValueError(f"expected {len(args)} comma-separated values")
        return tuple(parse_value(p, a) for p, a in zip(parts, args, strict=True))
    if origin is typing.Literal:
        for choice in args:
            if str(choice) == text:
                return choice
        raise ValueError(f"expected {_type_name(tp)}")
    if tp is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"{text!r} is not true or false")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            pass
        try:
            value = float(text)  # "1e6" is an int too
        except ValueError:
            raise ValueError(f"{text!r} is not an integer") from None
        if not value.is_integer():
            raise ValueError(f"{text!r} is not an integer")
        return int(value)
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
    if tp is str:
        return text
    raise ValueError(f"values of type {_type_name(tp)} cannot be set from the command line")


def parse_overrides(config_cls: type, items: Sequence[str], flag: str) -> dict[str, Any]:
    """``["key=value", ...]`` -> ``{key: typed value}`` for the fields of ``config_cls``."""
    hints = typing.get_type_hints(config_cls)
    fields = [f.name for f in dataclasses.fields(config_cls)]
    owner = f"{config_cls.__module__.rsplit('.', 1)[-1]}.{config_cls.__name__}"
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"{flag} expects key=value, got {item!r}")
        if key not in fields:
            raise UsageError(
                f"unknown {flag} key {key!r} for {owner}; valid keys: {', '.join(fields)}"
            )
        try:
            out[key] = parse_value(text, hints[key])
        except ValueError as e:
            raise UsageError(
                f"cannot parse {flag} {key}={text!r} for {owner}: {e}; expected "
                f"{_type_name(hints[key])}"
            ) from None
    return out


# ---------------------------------------------------------------------------------------------------
# Loop settings scaled to --steps.


def _eval_every(steps: int, unit: int, target: int) -> int:
    """The divisor of ``steps`` that is a multiple of ``unit`` closest to ``target`` (ties: smaller)."""
    # Divisors of steps that are multiples of unit: unit * d for d dividing steps / unit, found in
    # O(sqrt(steps / unit)) (a loop over every multiple hung on --steps 1e12).
    candidates = []
    if unit > 0 and steps % unit == 0:
        q = steps // unit
        for d in range(1, math.isqrt(q) + 1):
            if q % d == 0:
                candidates += [unit * d, unit * (q // d)]
    if not candidates:
        raise UsageError(
            f"--steps {steps} is not a multiple of the {unit} env steps the loop takes per "
            f"iteration; use e.g. --steps {max(unit, steps - steps % unit)}"
        )
    return min(candidates, key=lambda d: (abs(d - target), d))


def loop_config(
    loop_module: Any, loop_kind: str, agent_config: Any, args: argparse.Namespace
) -> tuple[Any, dict[str, Any]]:
    """Build the loop ``Config``; returns it and the values chosen automatically."""
    cls = loop_module.Config
    defaults = cls()  # the loop's paper defaults
    names = {f.name for f in dataclasses.fields(cls)}
    given: dict[str, Any] = {"total_steps": args.steps, "progress": not args.no_progress}
    if args.num_envs is not None:
        given["num_envs"] = args.num_envs
    if args.eval_every is not None:
        given["eval_every"] = args.eval_every
    if "n_step" in names and hasattr(agent_config, "n_step"):
        given["n_step"] = agent_config.n_step
    overrides = parse_overrides(cls, args.loop_set, "--loop-set")
    flags = {"total_steps": "--steps", "num_envs": "--num-envs", "eval_every": "--eval-every"}
    for key, flag in flags.items():
        if key in overrides and key in given and overrides[key] != given[key]:
            raise UsageError(
                f"--loop-set {key}={overrides[key]} conflicts with {flag} {given[key]}; give it once"
            )
    given.update(overrides)
    for key in ("total_steps", "num_envs", "eval_every"):
        if key in given and not (isinstance(given[key], int) and given[key] > 0):
            raise UsageError(f"{flags[key]} must be a positive integer, got {given[key]!r}")

    steps = given["total_steps"]
    num_envs = given.get("num_envs", defaults.num_envs)
    unit = num_envs * given.get("unroll_length", getattr(defaults, "unroll_length", 1))
    auto: dict[str, Any] = {}
    if "eval_every" not in given:
        target = max(unit, min(defaults.eval_every, steps // 10))
        auto["eval_every"] = _eval_every(steps, unit, target)
    if loop_kind == "online":
        if "warmup_steps" not in given:
            auto["warmup_steps"] = min(defaults.warmup_steps, steps // 10)
        if "buffer_size" not in given:
            batch = given.get("batch_size", defaults.batch_size)
            auto["buffer_size"] = max(min(defaults.buffer_size, steps), batch)
        warmup = given.get("warmup_steps", auto.get("warmup_steps"))
        if warmup >= steps:  # the library allows it (a run that only collects random-action data)
            raise UsageError(
                f"--loop-set warmup_steps={warmup} must be smaller than --steps {steps}: the run "
                "would make no update"
            )
    return cls(**given, **auto), auto


# ---------------------------------------------------------------------------------------------------
# Commands.


def _versions() -> dict[str, str]:
    from importlib import metadata

    import purerl

    out = {"purerl": purerl.__version__, "python": platform.python_version()}
    for dist in ("jax", "jaxlib", "numpy", "optax", "dm-haiku", "orbax-checkpoint", "brax"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


CONFIG_HELP = (
    "rerun from the config.json a run wrote (or its directory): its agent, env/dataset, seeds and "
    "every agent and loop setting; flags given here override them"
)
# Loop fields that --config passes as flags (so a flag given beside --config overrides them), or that
# follow from other settings, rather than as --loop-set.
_CONFIG_LOOP_FLAGS = {
    "total_steps": "--steps",
    "eval_every": "--eval-every",
    "num_envs": "--num-envs",
}
_CONFIG_LOOP_DERIVED = ("progress", "n_step")


def _require(args: argparse.Namespace, *names: str) -> None:
    """Without --config, the agent and these flags are required (argparse cannot say "unless")."""
    missing = [n for n in names if getattr(args, n.lstrip("-").replace("-", "_")) is None]
    if missing:
        shown = ", ".join(n.upper() if not n.startswith("-") else n for n in missing)
        raise UsageError(f"the following arguments are required: {shown} (or --config FILE)")


def _config_value(value: Any) -> str:
    """A config.json value as the text ``--set`` parses back to it (tuples came back as lists)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        if any(isinstance(v, list | tuple | dict) for v in value):
            raise UsageError(f"cannot pass the nested value {value!r} on the command line")
        return ",".join(_config_value(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int | str):
        return str(value)
    raise UsageError(f"cannot pass the value {value!r} on the command line")


def config_argv(path: str, argv: Sequence[str]) -> list[str]:
    """The command line that reruns the run whose ``config.json`` is at ``path`` (a file or the
    run's directory), with ``argv`` (the user's command line, which names ``--config``) on top.

    Every recorded agent field becomes a ``--set`` and every loop field a ``--loop-set`` (or the
    flag of :data:`_CONFIG_LOOP_FLAGS`), so the rerun does not depend on the defaults of the purerl
    that runs it; the user's own flags come last and win (``--set``/``--loop-set`` keys too).
    """
    import json

    command = argv[0]
    file = os.path.join(path, "config.json") if os.path.isdir(path) else path
    try:
        with open(file) as f:
            run = json.load(f)
        agent, seeds, seed = run["agent"], run["seeds"], run["seed"]
        agent_config, loop = run["agent_config"], run["loop_config"]
        recorded = run.get("argv", [])
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except (ValueError, KeyError, TypeError) as e:
        raise UsageError(
            f"--config {file}: not a config.json written by purerl train ({e})"
        ) from None
    run_command = "train-offline" if run.get("loop") == "offline" else "train"
    if run_command != command:
        raise UsageError(f"--config {file} is a 'purerl {run_command}' run; rerun it with that")
    user = list(argv[1:])
    for i, a in enumerate(user):  # drop --config FILE / --config=FILE
        if a == "--config":
            del user[i : i + 2]
            break
        if a.startswith("--config="):
            del user[i]
            break
    given = build_parser().parse_args([command, *user, "--config", file])
    if given.agent is not None and given.agent != agent:
        raise UsageError(f"--config {file} trains {agent!r}, not {given.agent!r}; leave out AGENT")
    out = [command] + ([agent] if given.agent is None else [])
    out += ["--seeds", str(seeds), "--seed", str(seed)]
    if command == "train":
        out += ["--env", run["env"]]
    else:
        out += ["--dataset", run["dataset"], "--env", run["env"]]
        before = build_parser().parse_args(recorded) if recorded else None
        if before is not None and before.dataset_seed is not None:
            out += ["--dataset-seed", str(before.dataset_seed)]
    if run.get("backend"):
        out += ["--backend", run["backend"]]
    for key, flag in _CONFIG_LOOP_FLAGS.items():
        if key in loop:
            out += [flag, str(loop[key])]
    out += [f"--set={k}={_config_value(v)}" for k, v in agent_config.items()]
    out += [
        f"--loop-set={k}={_config_value(v)}"
        for k, v in loop.items()
        if k not in _CONFIG_LOOP_FLAGS and k not in _CONFIG_LOOP_DERIVED
    ]
    return out + user


def _get_agent(name: str):
    from purerl import agents

    try:
        return agents.get(name)
    except ValueError as e:
        raise UsageError(str(e)) from None
    except ImportError as e:
        known = ", ".join(sorted(agents.list_agents()))
        raise UsageError(
            f"agent {name!r} is not available on this install ({e}); available: {known}"
        ) from None


def run_compiled(
    loop: Any,
    key: Any,
    seeds: int,
    num_periods: int,
    what: str,
    progress: Any,
    step_key: str,
    args: tuple = (),
) -> tuple[Any, dict, float]:
    """Run ``loop`` over ``seeds`` seeds with :func:`purerl.loops.common.run_periods`, printing
    ``compiling WHAT ... N.N s (tracing T s, XLA X s)`` before training (XLA: compiling, or
    loading from JAX's persistent compilation cache) and feeding ``progress`` (a
    :class:`purerl.loops.common.Progress` or None) from the host after each period. ``loop`` must be
    built without an in-program progress callback, so the persistent compilation cache can store
    it. Returns ``(final carries, metrics, compile seconds)``."""
    from purerl.loops import common

    print(f"compiling {what} ...", end=" ", flush=True)
    compile_s = []

    def on_compiled(trace_s: float, xla_s: float) -> None:
        compile_s.append(trace_s + xla_s)
        print(f"{trace_s + xla_s:.1f} s (tracing {trace_s:.1f} s, XLA {xla_s:.1f} s)", flush=True)
        if progress is not None:
            progress.start = time.perf_counter()  # its lines then count training time only

    def on_period(row: dict) -> None:
        if progress is not None:
            for s in range(seeds):
                progress(row[step_key][s], {k: v[s] for k, v in row.items()})

    try:
        states, metrics = common.run_periods(
            loop, key, seeds, num_periods, args=args, on_period=on_period, on_compiled=on_compiled
        )
    finally:
        if progress is not None:
            progress.close()
    return states, metrics, compile_s[0]


def _seed(text: str) -> int:
    """argparse type of ``--seed``: an int that fits a PRNG seed (int64), else a usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if not -(2**63) <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{text} does not fit a 64-bit PRNG seed")
    return value


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("purerl")
    except metadata.PackageNotFoundError:  # a source tree on sys.path, not installed
        import purerl

        return getattr(purerl, "__version__", "unknown")


def _check_out(path: str, overwrite: bool) -> None:
    """Refuse an ``--out`` that is a file, or a non-empty directory without ``--overwrite``, or one
    ``--overwrite`` must never clear (``/``, the home or current directory, or one above them).
    Writes nothing: called before any slow work (datasets, compiling)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"--out {path} is a file, not a directory; choose a directory")
    if not os.path.isdir(path):
        return
    if not overwrite:
        if os.listdir(path):
            raise UsageError(
                f"--out {path} is not empty (an earlier run?); add --overwrite to replace its "
                "contents, or choose another --out"
            )
        return
    target = os.path.realpath(path)
    for name, protected in (("the home directory", "~"), ("the current directory", ".")):
        protected = os.path.realpath(os.path.expanduser(protected))
        if target == os.path.sep or target == protected or protected.startswith(target + os.sep):
            what = "/" if target == os.path.sep else name
            raise UsageError(
                f"--overwrite would clear --out {path}, which is (or holds) {what}; refusing: "
                "choose a run directory of its own"
            )


def _prepare_out(path: str, overwrite: bool = False) -> None:
    """Check ``--out`` (:func:`_check_out`), clear it when ``overwrite`` (every entry inside it;
    links are removed, never followed), create it and check that it is writable, all *before*
    compiling and training (a read-only directory used to throw a finished run away at the first
    write; a reused one kept a stale checkpoint/ or curve.png beside the new run)."""
    import shutil
    import tempfile

    _check_out(path, overwrite)
    try:
        if overwrite and os.path.isdir(path):
            for entry in os.scandir(path):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".purerl-write-check-"):
            pass
    except OSError as e:
        raise UsageError(f"cannot write to --out {path}: {e.strerror or e}") from None


def cmd_train(args: argparse.Namespace) -> int:
    import jax

    from purerl import envs
    from purerl.core import jsonio
    from purerl.loops import checkpoint, common, plots, writers

    _require(args, "agent", "--env", "--steps")
    module = _get_agent(args.agent)
    _check_out(args.out, args.overwrite)
    if args.env not in envs.list_envs():
        raise UsageError(
            f"unknown env {args.env!r}; known envs: {', '.join(sorted(envs.list_envs()))}"
        )
    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    if args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")

    try:
        agent_config = module.Config(**parse_overrides(module.Config, args.set, "--set"))
    except (ValueError, TypeError) as e:
        raise UsageError(f"invalid agent config: {e}") from None

    loop_kind = getattr(module, "LOOP", "online")
    if loop_kind == "online":
        from purerl.loops import online as loop_module
    elif loop_kind == "on_policy":
        from purerl.loops import on_policy as loop_module
    else:
        raise UsageError(f"agent {args.agent!r} declares an unknown loop {loop_kind!r}")
    try:
        config, auto = loop_config(loop_module, loop_kind, agent_config, args)
    except (ValueError, TypeError) as e:
        raise UsageError(f"invalid loop config: {e}") from None

    try:
        env = envs.make(args.env, backend=args.backend)
        algo = module.make(agent_config, env.spec)
    except ValueError as e:
        raise UsageError(str(e)) from None

    print(f"agent ({args.agent}): {agent_config}")
    print(f"loop ({loop_kind}): {config}")
    if auto:
        chosen = ", ".join(f"{k}={v}" for k, v in auto.items())
        print(f"set for --steps {args.steps} (override with --loop-set): {chosen}")

    for flag, module, extra in (
        ("tensorboard", "tensorboardX", "tensorboard"),
        ("wandb", "wandb", "wandb"),
    ):
        if getattr(args, flag) and importlib.util.find_spec(module) is None:
            raise UsageError(f"--{flag} needs the {module} package: pip install purerl[{extra}]")

    _prepare_out(args.out, args.overwrite)
    run_info = {
        "agent": args.agent,
        "env": args.env,
        "backend": args.backend,
        "seeds": args.seeds,
        "seed": args.seed,
        "loop": loop_kind,
        "agent_config": dataclasses.asdict(agent_config),
        "loop_config": dataclasses.asdict(config),
        "argv": list(args.argv),
        "versions": _versions(),
        "devices": [str(d) for d in jax.devices()],
    }

    # No progress callback inside the compiled program (JAX would not cache it): run_compiled
    # reports progress between periods.
    loop = loop_module.make_loop(algo, env, dataclasses.replace(config, progress=False))
    progress = None if args.no_progress else common.Progress(config.total_steps, desc=args.env)
    check = getattr(config, "on_nonfinite", "raise") == "raise"
    start = time.perf_counter()
    what = f"{args.agent} on {args.env} ({args.seeds} seeds in one program)"
    states, metrics, compile_s = run_compiled(
        loop, jax.random.key(args.seed), args.seeds, config.num_evals, what, progress, "env_steps"
    )
    states = jax.block_until_ready(states)
    wall = time.perf_counter() - start
    run_info["wall_time_s"] = wall
    run_info["compile_time_s"] = compile_s

    csv_path = writers.write_csv(os.path.join(args.out, "metrics.csv"), metrics)
    if args.tensorboard:
        with writers.TensorBoardWriter(args.tensorboard) as tb:
            tb.write(metrics)
    if args.wandb:
        with writers.WandbWriter(
            args.wandb, name=f"{args.agent}-{args.env}", config=run_info
        ) as wb:
            wb.write(metrics)
    jsonio.write(os.path.join(args.out, "config.json"), run_info, default=str)
    if check and "check/nonfinite_step" in metrics:
        try:
            common.check_finite(metrics, checks=loop.checks)
        except common.Diverged as e:
            e.args = (f"{e}; metrics so far in {csv_path}",)
            raise

    label = f"{args.agent}/{args.env}"
    # The band and the table's CI stay inside the returns the env can give (None: no known bound).
    bounds = envs.return_bounds(args.env, env.spec.episode_length)
    plots.learning_curve(
        {label: metrics}, os.path.join(args.out, "curve.png"), title=label, bounds=bounds
    )
    if args.checkpoint:
        checkpoint.save(
            os.path.join(args.out, "checkpoint"),
            states,
            include_buffer=True,
            metadata={
                k: run_info[k]
                for k in ("agent", "env", "backend", "seeds", "seed", "agent_config", "loop_config")
            },
            overwrite=True,
        )
    table = plots.results_table(
        {label: metrics},
        extra_columns={"wall time incl. compile (s)": {label: f"{wall:.1f}"}},
        bounds=bounds,
    )
    print(table)
    print(
        f"wrote {args.out}: metrics.csv, curve.png, config.json"
        + (", checkpoint/" if args.checkpoint else "")
    )
    return 0


def cmd_train_offline(args: argparse.Namespace) -> int:
    import jax

    from purerl import envs, experts
    from purerl.core import jsonio
    from purerl.datasets import schema
    from purerl.loops import common, offline, plots, writers

    module = _get_agent(args.agent)
    if getattr(module, "LOOP", "online") not in ("offline", "online"):
        raise UsageError(
            f"agent {args.agent!r} learns from on-policy rollouts; it cannot train offline"
        )
    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    if args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    try:
        agent_config = module.Config(**parse_overrides(module.Config, args.set, "--set"))
    except (ValueError, TypeError) as e:
        raise UsageError(f"invalid agent config: {e}") from None
    if getattr(agent_config, "n_step", 1) != 1:
        raise UsageError(f"offline training samples single transitions; set {args.agent} n_step=1")
    _check_out(args.out, args.overwrite)  # before the dataset is loaded (or generated)

    # A file or a registry name (generated on first use); --dataset-seed is for names only.
    dataset = experts.load_or_generate(
        args.dataset, seed=args.dataset_seed, progress=not args.no_progress
    )
    meta = dataset.metadata
    env_name = args.env or meta.get("env")
    if env_name is None:
        raise UsageError(f"dataset {args.dataset} does not say which env it is from; pass --env")
    if env_name not in envs.list_envs():
        raise UsageError(
            f"unknown env {env_name!r}; known envs: {', '.join(sorted(envs.list_envs()))}"
        )
    if hasattr(module, "prepare"):
        agent_config = module.prepare(agent_config, dataset)

    given: dict[str, Any] = {"total_steps": args.steps, "progress": not args.no_progress}
    if args.eval_every is not None:
        given["eval_every"] = args.eval_every
    given.update(parse_overrides(offline.Config, args.loop_set, "--loop-set"))
    auto = {}
    if "eval_every" not in given:
        auto["eval_every"] = _eval_every(args.steps, 1, max(1, min(5000, args.steps // 10)))
    try:
        config = offline.Config(**given, **auto)
        env = envs.make(env_name, backend=args.backend or meta.get("backend"))
        algo = module.make(agent_config, env.spec)
        data = offline.prepare_data(
            dataset, config, needs_next_action=getattr(module, "NEEDS_NEXT_ACTION", False)
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    refs = None
    if "ref_min_score" in meta and "ref_max_score" in meta:
        refs = (meta["ref_min_score"], meta["ref_max_score"])

    print(f"dataset: {args.dataset} ({len(dataset):,d} transitions, env {env_name})")
    print(f"agent ({args.agent}): {agent_config}")
    print(f"loop (offline): {config}")
    if auto:
        print(
            f"set for --steps {args.steps} (override with --loop-set): eval_every={auto['eval_every']}"
        )
    _prepare_out(args.out, args.overwrite)
    run_info = {
        "agent": args.agent,
        "dataset": args.dataset,
        "dataset_metadata": meta,
        "env": env_name,
        "seeds": args.seeds,
        "seed": args.seed,
        "loop": "offline",
        "agent_config": dataclasses.asdict(agent_config),
        "loop_config": dataclasses.asdict(config),
        "argv": list(args.argv),
        "versions": _versions(),
        "devices": [str(d) for d in jax.devices()],
    }
    loop = offline.make_loop(algo, env, dataclasses.replace(config, progress=False), refs)
    progress = None if args.no_progress else common.Progress(config.total_steps, desc=env_name)
    start = time.perf_counter()
    what = f"{args.agent} on {args.dataset} ({args.seeds} seeds in one program)"
    states, metrics, compile_s = run_compiled(
        loop,
        jax.random.key(args.seed),
        args.seeds,
        config.num_evals,
        what,
        progress,
        "updates",
        args=(data,),
    )
    states = jax.block_until_ready(states)
    run_info["wall_time_s"] = time.perf_counter() - start
    run_info["compile_time_s"] = compile_s
    csv_path = writers.write_csv(os.path.join(args.out, "metrics.csv"), metrics)
    jsonio.write(os.path.join(args.out, "config.json"), run_info, default=str)
    if "check/nonfinite_step" in metrics:
        try:
            common.check_finite(
                metrics, what="agent's losses or metrics", unit="update", checks=loop.checks
            )
        except common.Diverged as e:
            e.args = (f"{e}; metrics so far in {csv_path}",)
            raise
    label = f"{args.agent}/{args.dataset}"
    metric = "eval/normalized" if refs else "eval/return"
    bounds = return_bounds = envs.return_bounds(env_name, env.spec.episode_length)
    reference = None
    if refs:  # the normalized score's range and its random (0) and expert (100) levels
        bounds = tuple(None if b is None else schema.normalized_score(b, *refs) for b in bounds)
        reference = {"random": 0.0, "expert": 100.0}
    plots.learning_curve(
        {label: metrics},
        os.path.join(args.out, "curve.png"),
        metric=metric,
        title=label,
        bounds=bounds,
        reference=reference,
    )
    extra = {"wall time incl. compile (s)": {label: f"{run_info['wall_time_s']:.1f}"}}
    print(plots.results_table({label: metrics}, metric=metric, extra_columns=extra, bounds=bounds))
    if refs:
        print(plots.results_table({label: metrics}, metric="eval/return", bounds=return_bounds))
    print(f"wrote {args.out}: metrics.csv, curve.png, config.json")
    return 0


def cmd_agents(args: argparse.Namespace) -> int:
    from purerl import agents
    from purerl.core import fields

    if args.name is not None:
        if args.name not in agents.REGISTRY:
            raise UsageError(
                f"unknown agent {args.name!r}; known agents: {', '.join(sorted(agents.REGISTRY))}"
            )
        module = agents.get(args.name)
        print(
            f"{args.name}: {agents.REGISTRY[args.name][1]} (loop: {getattr(module, 'LOOP', '?')})"
        )
        print(f"{module.__name__}.Config, set with --set KEY=VALUE:\n")
        print(fields.format_fields(fields.config_fields(module.Config)))
        loop_name = getattr(module, "LOOP", None)
        if loop_name is not None:
            loop = importlib.import_module(f"purerl.loops.{loop_name}")
            command = "train-offline" if loop_name == "offline" else "train"
            print(
                f"\n{loop.__name__}.Config ('purerl {command}'), set with --loop-set KEY=VALUE:\n"
            )
            print(fields.format_fields(fields.config_fields(loop.Config)))
        return 0
    listing = agents.list_agents()
    width = max(map(len, listing), default=0)
    for name, desc in listing.items():
        print(f"{name:<{width}}  {desc}")
    return 0


def cmd_envs(args: argparse.Namespace) -> int:
    from purerl import envs

    listing = envs.list_envs()
    width = max(map(len, listing), default=0)
    for name, desc in listing.items():
        print(f"{name:<{width}}  {desc}")
    return 0


def _expert_for(args: argparse.Namespace):
    """The expert named by --expert DIR, else the cached expert of --env (trained if missing)."""
    from purerl import experts

    if args.expert:
        return experts.load_expert(args.expert)
    if args.env not in experts.PRESETS:
        raise UsageError(
            f"no expert preset for env {args.env!r}; presets: {', '.join(sorted(experts.PRESETS))}"
            " (or pass --expert DIR)"
        )
    return experts.get_expert(
        args.env,
        args.seed,
        args.backend,
        args.cache,
        check_versions=not args.ignore_versions,
        progress=not args.no_progress,
    )


def _print_expert(info: dict, path: str) -> None:
    curve = info["curve"]
    print(
        f"expert: {info['agent']} on {info['env']} ({info['backend'] or 'jax'}), seed {info['seed']}"
    )
    print("  step      eval return")
    for step, ret in zip(curve["env_steps"], curve["eval_return"], strict=True):
        print(f"  {step:>9,d} {ret:>10.1f}")
    print(
        f"reference returns ({20} episodes): random {info['ref_min_score']:.1f}, expert "
        f"{info['ref_max_score']:.1f} (period {info['expert_period']})"
    )
    band = "inside" if info["medium_in_band"] else "OUTSIDE"
    print(
        f"medium policy: period {info['medium_period']}, return {info['medium_return']:.1f} = "
        f"{info['medium_normalized']:.0f} normalized ({band} the 33-50 band)"
    )
    print(f"training wall time {info['train_wall_s']:.0f} s (total {info['wall_s']:.0f} s)")
    print(f"wrote {path}")


def cmd_generate_expert(args: argparse.Namespace) -> int:
    from purerl import experts
    from purerl.datasets import registry

    if args.env not in experts.PRESETS:
        raise UsageError(
            f"no expert preset for env {args.env!r}; presets: {', '.join(sorted(experts.PRESETS))}"
        )
    path = args.out or registry.expert_dir(args.env, args.seed, args.backend, args.cache)
    if os.path.exists(os.path.join(path, "expert.json")) and not args.force:
        info = experts.load_expert(path).info
        print(f"an expert exists in {path} (use --force to train again)")
    else:
        info = experts.train_expert(
            args.env, path, args.seed, args.backend, progress=not args.no_progress, overwrite=True
        )
    _print_expert(info, path)
    return 0


def _write(ds, out: str) -> None:
    from purerl.datasets import io

    io.save(out, ds)
    print(f"wrote {out}")


def cmd_generate_dataset(args: argparse.Namespace) -> int:
    from purerl import experts
    from purerl.datasets import registry

    if args.level not in experts.LEVELS:
        raise UsageError(f"unknown --level {args.level!r}; levels: {', '.join(experts.LEVELS)}")
    if args.size is not None and args.size < 1:
        raise UsageError(f"--size must be >= 1, got {args.size}")
    start = time.perf_counter()
    if args.out is None and args.expert is None:
        ds = registry.load(
            f"{args.env}-{args.level}",
            args.seed,
            args.size,
            args.backend,
            args.cache,
            regenerate=args.force,
            check_versions=not args.ignore_versions,
            progress=not args.no_progress,
            generator=experts.generate_named,
        )
        where = registry.dataset_path(
            f"{args.env}-{args.level}", args.seed, args.backend, args.cache, args.size
        )
    else:
        expert = _expert_for(args)
        size = args.size
        if size is None and args.level != "medium-replay":
            size = registry.DEFAULT_SIZES[args.level]
        ds = experts.generate_dataset(expert, args.level, size, args.seed)
        where = args.out or f"{args.env}-{args.level}.npz"
        _write(ds, where)
    meta = ds.metadata
    score = ds.normalized_score(meta["mean_episode_return"])
    print(
        f"{meta['env']}-{meta['level']}: {len(ds):,d} transitions, {meta['num_episodes']} episodes, "
        f"mean return {meta['mean_episode_return']:.1f} (normalized {score:.1f}; random "
        f"{meta['ref_min_score']:.1f}, expert {meta['ref_max_score']:.1f}); "
        f"{time.perf_counter() - start:.0f} s; {where}"
    )
    return 0


def cmd_generate_demos(args: argparse.Namespace) -> int:
    from purerl import experts

    if args.episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {args.episodes}")
    if args.subsample < 1:
        raise UsageError(f"--subsample must be >= 1, got {args.subsample}")
    expert = _expert_for(args)
    ds = experts.generate_demos(
        expert, args.episodes, args.seed, args.subsample, deterministic=not args.stochastic
    )
    out = args.out or f"{args.env}-demos-{args.episodes}.npz"
    _write(ds, out)
    returns = ds.metadata["episode_returns"]
    print(
        f"{args.episodes} expert episodes, {len(ds):,d} transitions kept (every "
        f"{args.subsample}), returns mean {sum(returns) / len(returns):.1f} "
        f"(expert reference {ds.metadata['ref_max_score']:.1f})"
    )
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from purerl.datasets import registry

    for name in registry.list_datasets():
        path = registry.dataset_path(name, root=args.cache)
        print(f"{name:<40} {'cached' if os.path.exists(path) else '-'}")
    return 0


# ---------------------------------------------------------------------------------------------------
# purerl align: the toy RLHF pipeline of alignment.pipeline (pretrain -> SFT -> preferences -> WARM
# reward models -> RL); here only its flags and its printing.


def _align_config(args: argparse.Namespace):
    """The ``alignment.pipeline.PipelineConfig`` of the flags (``UsageError`` naming the flag)."""
    from purerl.alignment import lm, pipeline, reward_model, tasks, warm
    from purerl.alignment import policy_gradient as pg

    for flag in ("rms", "pretrain_steps", "sft_steps", "rm_steps", "batch_size", "pairs"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    for flag in ("eval_pairs", "bon_n", "bon_prompts", "rl_steps"):
        if getattr(args, flag) < 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be >= 0, got {getattr(args, flag)}")
    if not args.lm_lr > 0:
        raise UsageError(f"--lm-lr must be > 0, got {args.lm_lr}")
    if not 0.0 <= args.noise <= 1.0:
        raise UsageError(f"--noise must be a probability in [0, 1], got {args.noise}")
    if args.rl_eval_every < 1:
        raise UsageError(f"--rl-eval-every must be >= 1, got {args.rl_eval_every}")
    if args.rl_steps > args.rl_eval_every and args.rl_steps % args.rl_eval_every:
        raise UsageError(
            f"--rl-steps {args.rl_steps} must be a multiple of --rl-eval-every {args.rl_eval_every}"
        )
    if args.baklava and args.rms < 2:
        raise UsageError("--baklava starts members from 2 SFT checkpoints; it needs --rms >= 2")
    if args.baklava and args.sft_steps < 2:
        raise UsageError("--baklava keeps 2 SFT checkpoints; it needs --sft-steps >= 2")
    try:
        task = tasks.TaskConfig(**parse_overrides(tasks.TaskConfig, args.task_set, "--task-set"))
        lm_config = pipeline.default_lm_config(
            task, **parse_overrides(lm.LMConfig, args.lm_set, "--lm-set")
        )
        rm_given = parse_overrides(reward_model.RMConfig, args.rm_set, "--rm-set")
        rm_config = reward_model.RMConfig(lm=lm_config, **rm_given)
        warm_given = {"num_members": args.rms, "steps": args.rm_steps}
        warm_given.update(parse_overrides(warm.WarmConfig, args.warm_set, "--warm-set"))
        warm_config = warm.WarmConfig(rm=rm_config, **warm_given)
        rl_given = {"beta": args.rl_beta, "anchor": args.rl_anchor, "learning_rate": args.rl_lr}
        rl_given.update(parse_overrides(pg.RLConfig, args.rl_set, "--rl-set"))
        rl_config = pg.RLConfig(**rl_given)
    except (ValueError, TypeError) as e:
        raise UsageError(f"invalid config: {e}") from None
    if warm_config.batch_size > args.pairs:
        raise UsageError(
            f"--pairs {args.pairs} is smaller than the reward models' batch size "
            f"{warm_config.batch_size} (--warm-set batch_size=...)"
        )
    try:
        return pipeline.PipelineConfig(
            seed=args.seed, task=task, lm=lm_config, pretrain_steps=args.pretrain_steps,
            sft_steps=args.sft_steps, batch_size=args.batch_size, lm_lr=args.lm_lr,
            pairs=args.pairs, noise=args.noise, eval_pairs=args.eval_pairs, warm=warm_config,
            baklava=args.baklava, bon_n=args.bon_n, bon_prompts=args.bon_prompts, rl=rl_config,
            rl_steps=args.rl_steps, rl_eval_every=args.rl_eval_every, rl_proxy=args.rl_proxy,
        )  # fmt: skip
    except ValueError as e:
        raise UsageError(f"invalid config: {e}") from None


def _print_stage(stage: str, value: Any, seconds: float, config: Any) -> None:
    """One progress line per finished pipeline stage (``pipeline.run``'s ``progress``)."""
    import numpy as np

    if stage == "pretrain":
        print(f"pretrain: {config.pretrain_steps} updates, NLL {float(value.losses[-1]):.3f} "
              f"({seconds:.1f} s)")  # fmt: skip
    elif stage == "sft":
        ckpts = config.sft_checkpoints
        print(f"sft: {config.sft_steps} updates, response NLL {float(value.losses[-1]):.3f} "
              f"({seconds:.1f} s)" + (f", Baklava checkpoints at {ckpts}" if ckpts else ""))  # fmt: skip
    elif stage == "preferences":
        print(f"preferences: {config.pairs} training pairs, {int(np.sum(value[0].flipped))} labels "
              f"flipped (noise {config.noise}); {config.eval_pairs} evaluation pairs per set")  # fmt: skip
    elif stage == "reward_models":
        final_loss = np.asarray(value.metrics["loss/bt"][-1])
        w = config.warm_config
        print(f"reward models: M={w.num_members} x {w.steps} updates in one vmap, final BT loss "
              f"{', '.join(f'{v:.3f}' for v in final_loss)} ({seconds:.1f} s)")  # fmt: skip
    elif stage == "policy":
        c = value.curve
        print(
            f"policy: {config.rl_steps} REINFORCE updates against {config.rl_proxy!r}, gold "
            f"{c['eval/gold'][0]:.3f} -> {c['eval/gold'][-1]:.3f}, proxy {c['eval/reward'][0]:.3f}"
            f" -> {c['eval/reward'][-1]:.3f}, KL {c['eval/kl_sft'][-1]:.3f} ({seconds:.1f} s)"
        )


def cmd_align(args: argparse.Namespace) -> int:
    import numpy as np

    from purerl.alignment import pipeline
    from purerl.core import jsonio

    _check_out(args.out, args.overwrite)
    config = _align_config(args)
    print(f"task: {config.task}")
    print(f"lm: {config.lm_config}")
    print(f"warm: {config.warm_config}")
    if config.rl_steps:
        print(f"rl: {config.rl} against proxy {config.rl_proxy!r}, {config.rl_steps} updates")
    _prepare_out(args.out, args.overwrite)
    progress = lambda stage, value, seconds: _print_stage(stage, value, seconds, config)  # noqa: E731
    results = pipeline.run(config, progress)
    report_text = pipeline.report(results)
    np.savez(os.path.join(args.out, "params.npz"), **pipeline.param_arrays(results))
    summary = {"argv": list(args.argv), **pipeline.summary(results), "versions": _versions()}
    jsonio.write(os.path.join(args.out, "summary.json"), summary)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(f"# purerl align (seed {args.seed})\n\n{report_text}\n")
    print(report_text)
    print(f"wrote {args.out}: params.npz, summary.json, summary.md")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="purerl",
        description="purerl: pure-JAX RL from the command line",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"purerl {_version()}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    train = sub.add_parser("train", help="train an agent on an env over several seeds")
    train.add_argument("agent", nargs="?", help="agent name (see 'purerl agents')")
    train.add_argument("--env", help="env name (see 'purerl envs'); required without --config")
    train.add_argument("--seeds", type=int, default=1, help="number of seeds, run in one vmap")
    train.add_argument("--steps", type=int, help="env steps per seed; required without --config")
    train.add_argument("--config", default=None, metavar="FILE", help=CONFIG_HELP)
    train.add_argument("--out", required=True, help="output directory (new or empty)")
    train.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="agent Config override"
    )
    train.add_argument(
        "--loop-set", action="append", default=[], metavar="KEY=VALUE", help="loop Config override"
    )
    train.add_argument("--backend", default=None, help="brax backend (brax envs only)")
    train.add_argument("--num-envs", type=int, default=None, help="parallel envs per seed")
    train.add_argument("--eval-every", type=int, default=None, help="env steps between evals")
    train.add_argument("--seed", type=_seed, default=0, help="base PRNG seed")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument(
        "--tensorboard",
        default=None,
        metavar="LOGDIR",
        help="also write TensorBoard event files (pip install purerl[tensorboard])",
    )
    train.add_argument(
        "--wandb",
        default=None,
        metavar="PROJECT",
        help="also log to Weights & Biases (pip install purerl[wandb])",
    )
    train.add_argument(
        "--checkpoint",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="save the final carry (with the replay buffer) to OUT/checkpoint",
    )
    train.set_defaults(func=cmd_train)

    off = sub.add_parser("train-offline", help="train an agent on a dataset over several seeds")
    off.add_argument(
        "agent", nargs="?", help="agent name (see 'purerl agents'): bc, td3, td3_bc, ..."
    )
    off.add_argument(
        "--dataset",
        help="registry name (halfcheetah-medium; generated on first use) or file (.npz, .hdf5); "
        "required without --config",
    )
    off.add_argument("--seeds", type=int, default=1, help="number of seeds, run in one vmap")
    off.add_argument(
        "--steps", type=int, help="gradient updates per seed; required without --config"
    )
    off.add_argument("--config", default=None, metavar="FILE", help=CONFIG_HELP)
    off.add_argument("--out", required=True, help="output directory (new or empty)")
    off.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="agent Config")
    off.add_argument(
        "--loop-set", action="append", default=[], metavar="KEY=VALUE", help="offline.Config"
    )
    off.add_argument("--env", default=None, help="evaluation env (default: the dataset's)")
    off.add_argument("--backend", default=None, help="brax backend (default: the dataset's)")
    off.add_argument("--eval-every", type=int, default=None, help="updates between evaluations")
    off.add_argument("--seed", type=_seed, default=0, help="base PRNG seed of the runs")
    off.add_argument(
        "--dataset-seed", type=int, default=None, help="seed of a named dataset (default 0)"
    )
    off.add_argument("--no-progress", action="store_true", help="no progress bar")
    off.set_defaults(func=cmd_train_offline)

    generate = sub.add_parser("generate", help="train experts, generate datasets and demos")
    gsub = generate.add_subparsers(dest="what", parser_class=_Parser, required=True)

    def common(p, env_required=True):
        p.add_argument("--env", required=env_required, help="env name (see 'purerl envs')")
        p.add_argument("--seed", type=_seed, default=0, help="PRNG seed (expert run and rollouts)")
        p.add_argument("--backend", default=None, help="brax backend (brax envs only)")
        p.add_argument("--cache", default=None, help="cache root (default ~/.cache/purerl)")
        p.add_argument("--no-progress", action="store_true", help="no progress output")
        p.add_argument(
            "--ignore-versions", action="store_true", help="accept caches made by other versions"
        )

    p = gsub.add_parser("expert", help="train and save an expert")
    common(p)
    p.add_argument("--out", default=None, help="expert directory (default: in the cache)")
    p.add_argument("--force", action="store_true", help="train again even if it exists")
    p.set_defaults(func=cmd_generate_expert)

    p = gsub.add_parser("dataset", help="generate a D4RL-style dataset")
    common(p)
    p.add_argument(
        "--level", required=True, help="random, medium, medium-replay, medium-expert, expert"
    )
    p.add_argument("--size", type=int, default=None, help="transitions (default per level)")
    p.add_argument("--expert", default=None, help="expert directory (default: the cached one)")
    p.add_argument("--out", default=None, help=".npz or .hdf5 file (default: the cache)")
    p.add_argument("--force", action="store_true", help="regenerate even if cached")
    p.set_defaults(func=cmd_generate_dataset)

    p = gsub.add_parser("demos", help="generate expert demonstrations")
    common(p)
    p.add_argument("--episodes", type=int, required=True, help="number of whole episodes")
    p.add_argument("--subsample", type=int, default=1, help="keep every Nth transition (GAIL: 20)")
    p.add_argument("--stochastic", action="store_true", help="sample actions (default: the mode)")
    p.add_argument("--expert", default=None, help="expert directory (default: the cached one)")
    p.add_argument("--out", default=None, help=".npz or .hdf5 file")
    p.set_defaults(func=cmd_generate_demos)

    p = sub.add_parser("datasets", help="list named datasets and whether they are cached")
    p.add_argument("--cache", default=None, help="cache root (default ~/.cache/purerl)")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser(
        "align", help="toy RLHF: pretrain -> SFT -> preferences -> WARM reward models -> report"
    )
    p.add_argument("--out", required=True, help="output directory (new or empty)")
    p.add_argument("--seed", type=_seed, default=0, help="PRNG seed of the whole pipeline")
    p.add_argument("--rms", type=int, default=4, help="number M of reward models (WARM members)")
    p.add_argument("--noise", type=float, default=0.25, help="fraction of flipped training labels")
    p.add_argument("--pretrain-steps", type=int, default=400, help="LM pre-training updates")
    p.add_argument(
        "--sft-steps", type=int, default=400, help="SFT updates (= --pretrain-steps: one compile)"
    )
    p.add_argument("--rm-steps", type=int, default=500, help="fine-tuning updates per RM")
    p.add_argument("--batch-size", type=int, default=64, help="sequences per LM update")
    p.add_argument("--lm-lr", type=float, default=3e-3, help="Adam step size of pretrain and SFT")
    p.add_argument("--pairs", type=int, default=2000, help="training preference pairs")
    p.add_argument("--eval-pairs", type=int, default=1000, help="pairs per evaluation set")
    p.add_argument("--bon-n", type=int, default=16, help="Best-of-N: samples per prompt (0: skip)")
    p.add_argument("--bon-prompts", type=int, default=200, help="Best-of-N: prompts")
    p.add_argument(
        "--baklava", action="store_true", help="start members from 2 SFT checkpoints (WARM 3.3)"
    )
    p.add_argument("--rl-steps", type=int, default=400, help="REINFORCE updates (0: no RL)")
    p.add_argument("--rl-eval-every", type=int, default=50, help="updates between evaluations")
    p.add_argument("--rl-beta", type=float, default=0.01, help="KL coefficient beta")
    p.add_argument("--rl-lr", type=float, default=1e-4, help="Adam step size of the policy")
    p.add_argument("--rl-anchor", choices=("sft", "ema"), default="sft", help="KL anchor")
    p.add_argument(
        "--rl-proxy", choices=("wa", "ens", "member0"), default="wa", help="reward to optimise"
    )
    for flag, what in (
        ("--task-set", "tasks.TaskConfig"),
        ("--lm-set", "lm.LMConfig"),
        ("--rm-set", "reward_model.RMConfig"),
        ("--warm-set", "warm.WarmConfig"),
        ("--rl-set", "policy_gradient.RLConfig"),
    ):
        p.add_argument(flag, action="append", default=[], metavar="KEY=VALUE", help=what)
    p.set_defaults(func=cmd_align)

    for writing in (train, off, p):  # p: align
        writing.add_argument(
            "--overwrite",
            action="store_true",
            help="clear a non-empty --out first (its whole contents)",
        )
    for compiling in (train, off, *gsub.choices.values(), p):  # p: align
        compiling.add_argument(
            "--no-compilation-cache",
            action="store_true",
            help="do not use JAX's persistent compilation cache (<purerl cache>/jax; also "
            "PURERL_NO_COMPILATION_CACHE=1)",
        )

    p = sub.add_parser(
        "agents", help="list agents, or one agent's config fields with defaults and sources"
    )
    p.add_argument("name", nargs="?", default=None, help="an agent: print its Config fields")
    p.set_defaults(func=cmd_agents)
    sub.add_parser("envs", help="list envs").set_defaults(func=cmd_envs)
    return parser


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def _is_input_error(e: Exception) -> bool:
    from purerl.datasets.schema import DatasetError

    return isinstance(e, DatasetError | FileNotFoundError | FileExistsError)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``purerl`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        if getattr(args, "config", None) is not None:
            config_file = args.config
            argv = config_argv(config_file, argv)
            args = parser.parse_args(argv)
            args.config = config_file
        args.argv = argv
        if getattr(args, "no_compilation_cache", True) is False:
            from purerl.core import compilation

            compilation.enable_compilation_cache()
        return args.func(args)
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except UsageError as e:
        print(f"purerl: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except FloatingPointError as e:  # loops.common.Diverged / NonFiniteError: exit 3
        from purerl.core.divergence import NonFiniteError

        if not isinstance(e, NonFiniteError):
            raise
        print(f"purerl: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_DIVERGED
    except (ValueError, FileNotFoundError, FileExistsError) as e:  # DatasetError, bad files
        if not _is_input_error(e):
            raise
        print(f"purerl: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
