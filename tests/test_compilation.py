"""JAX's persistent compilation cache (``purerl.core.compilation``), the period-by-period run the
CLI uses so its programs can be cached (``loops.common.run_periods``), the "compiling ..." line and
the brax import without mujoco's warp noise."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.experimental.compilation_cache import compilation_cache as cc

import purerl
from purerl import cli, envs
from purerl.agents import td3
from purerl.core import compilation
from purerl.datasets import registry
from purerl.envs import brax as brax_adapter
from purerl.loops import common, online

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = online.Config(
    total_steps=600,
    warmup_steps=100,
    eval_every=200,
    batch_size=16,
    buffer_size=600,
    eval_episodes=2,
)


def _plain(x):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(x))
    return np.asarray(x)


def test_run_periods_equals_the_single_program():
    """Same carries and metrics as ``run_seeds`` on ``make_train_fn`` (one scan over all periods),
    with the period rows handed over one by one and the compile time reported once."""
    env = envs.make("point_mass")
    config = CONFIG
    loop = online.make_loop(td3.make(td3.Config(hidden=(8, 8)), env.spec), env, config)
    key = jax.random.key(4)
    whole_states, whole = common.run_seeds(common.make_train_fn(loop, config.num_evals), key, 2)
    rows, compiled = [], []
    states, metrics = common.run_periods(
        loop,
        key,
        2,
        config.num_evals,
        on_period=rows.append,
        on_compiled=lambda *t: compiled.append(t),
    )
    assert set(metrics) == set(whole)
    for k in whole:
        assert metrics[k].shape == whole[k].shape == (2, 3), k
        np.testing.assert_array_equal(metrics[k], whole[k], err_msg=k)
    for a, b in zip(jax.tree.leaves(states), jax.tree.leaves(whole_states), strict=True):
        np.testing.assert_array_equal(_plain(a), _plain(b))
    assert [int(r["env_steps"][0]) for r in rows] == [200, 400, 600]
    assert rows[0]["eval/return"].shape == (2,)
    assert len(compiled) == 1 and all(t >= 0 for t in compiled[0])


@pytest.fixture
def jax_cache_config():
    """Restore JAX's cache directory after a test that changes it."""
    before = jax.config.jax_compilation_cache_dir
    yield
    jax.config.update("jax_compilation_cache_dir", before)
    cc.reset_cache()


def test_enable_default_path_env_switch_and_users_choice(tmp_path, monkeypatch, jax_cache_config):
    monkeypatch.setenv("PURERL_CACHE", str(tmp_path / "root"))
    assert compilation.cache_dir() == registry.cache_dir() == str(tmp_path / "root")

    monkeypatch.setenv("PURERL_NO_COMPILATION_CACHE", "1")
    jax.config.update("jax_compilation_cache_dir", None)
    assert purerl.enable_compilation_cache() is None
    assert jax.config.jax_compilation_cache_dir is None

    monkeypatch.delenv("PURERL_NO_COMPILATION_CACHE")
    path = purerl.enable_compilation_cache()
    assert path == str(tmp_path / "root" / "jax") == jax.config.jax_compilation_cache_dir
    assert os.path.isdir(path)
    # A directory the user already gave JAX is kept; an explicit path replaces it.
    assert compilation.enable_compilation_cache() == path
    other = compilation.enable_compilation_cache(str(tmp_path / "mine"))
    assert other == str(tmp_path / "mine") == jax.config.jax_compilation_cache_dir
    compilation.disable_compilation_cache()
    assert jax.config.jax_compilation_cache_dir is None


def test_import_purerl_leaves_jax_config_alone():
    code = "import jax, purerl, purerl.loops; print(jax.config.jax_compilation_cache_dir)"
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None"


# Runs the CLI and counts JAX's persistent-cache hits (jax.monitoring events).
_CLI = """
import sys, jax.monitoring
from purerl import cli
hits = []
jax.monitoring.register_event_listener(
    lambda event, **kw: hits.append(event) if event == "/jax/compilation_cache/cache_hits" else None
)
rc = cli.main(sys.argv[1:])
print("CACHE_HITS", len(hits))
sys.exit(rc)
"""


def _cli(argv, env):
    out = subprocess.run(
        [sys.executable, "-c", _CLI, *argv], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_cli_cold_and_warm_cache_give_the_same_numbers(tmp_path):
    """The first run compiles and writes the cache, the second loads the training programs from it
    (cache hits) and writes the same metrics; the 'compiling ...' line comes before training."""
    env = {k: v for k, v in os.environ.items() if k != "PURERL_NO_COMPILATION_CACHE"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    # Write every program, however fast it compiled (JAX's default skips those under 1 s).
    env.update(
        PYTHONPATH=ROOT,
        PURERL_CACHE=str(tmp_path / "cache"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
    )
    argv = ["train", "td3", "--env", "point_mass", "--seeds", "2", "--steps", "400"]
    argv += ["--set", "hidden=8,8", "--loop-set", "batch_size=16", "--loop-set", "eval_episodes=2"]
    argv += ["--no-checkpoint"]
    cold = _cli([*argv, "--out", str(tmp_path / "cold")], env)
    assert os.listdir(tmp_path / "cache" / "jax")
    warm = _cli([*argv, "--out", str(tmp_path / "warm")], env)

    assert "CACHE_HITS 0" in cold
    hits = int(warm.split("CACHE_HITS")[1].split()[0])
    assert hits >= 2  # at least the init and the period programs
    for out in (cold, warm):
        line = next(x for x in out.splitlines() if x.startswith("compiling td3 on point_mass"))
        assert "s (tracing" in line and "XLA" in line
        assert out.index("compiling td3") < out.index("| run |")
    assert (tmp_path / "cold" / "metrics.csv").read_text() == (
        tmp_path / "warm" / "metrics.csv"
    ).read_text()


@pytest.mark.parametrize(
    "flag, env_value, enabled",
    [([], None, True), (["--no-compilation-cache"], None, False), ([], "1", False)],
)
def test_cli_enables_the_cache_unless_told_not_to(flag, env_value, enabled, tmp_path, monkeypatch):
    """The compiling commands turn the cache on before anything compiles; the flag or
    PURERL_NO_COMPILATION_CACHE keep it off (the env var inside enable_compilation_cache)."""
    calls = []
    real = compilation.enable_compilation_cache
    monkeypatch.setattr(
        compilation, "enable_compilation_cache", lambda path=None: calls.append(real(path))
    )
    monkeypatch.setenv("PURERL_CACHE", str(tmp_path))
    if env_value is None:
        monkeypatch.delenv("PURERL_NO_COMPILATION_CACHE", raising=False)
    else:
        monkeypatch.setenv("PURERL_NO_COMPILATION_CACHE", env_value)
    before = jax.config.jax_compilation_cache_dir
    try:
        argv = ["train", "td3", "--env", "no_such_env", "--steps", "10", "--out", str(tmp_path)]
        assert cli.main([*argv, *flag]) == 2  # fails on the env name, after the cache step
        used = jax.config.jax_compilation_cache_dir
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
        cc.reset_cache()
    if enabled:
        assert calls == [str(tmp_path / "jax")] and used == str(tmp_path / "jax")
    else:
        assert calls in ([], [None]) and used == before
    assert cli.main(["agents"]) == 0 and len(calls) <= 1  # listing commands never touch it


def test_import_dropping_lines_keeps_everything_else(tmp_path, monkeypatch, capsys):
    (tmp_path / "noisy_fake_mjx.py").write_text(
        "print(\"Failed to import warp: No module named 'warp'\")\n"
        "print('Failed to import warp: libcuda.so: cannot open shared object file')\n"
        "print(\"Failed to import mujoco_warp: No module named 'warp'\")\n"
        "print('something else')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = brax_adapter.import_dropping_lines("noisy_fake_mjx", brax_adapter.WARP_ABSENT)
    assert module.__name__ == "noisy_fake_mjx"
    out = capsys.readouterr().out
    assert out == (
        "Failed to import warp: libcuda.so: cannot open shared object file\nsomething else\n"
    )

    (tmp_path / "broken_fake_mjx.py").write_text(
        "print('before the error')\nraise ImportError('x')\n"
    )
    with pytest.raises(ImportError):
        brax_adapter.import_dropping_lines("broken_fake_mjx", brax_adapter.WARP_ABSENT)
    assert capsys.readouterr().out == "before the error\n"


def test_brax_env_is_made_without_warp_noise():
    code = "from purerl import envs; envs.make('inverted_pendulum'); print('made')"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "made\n", out.stdout
    assert "warp" not in out.stderr
