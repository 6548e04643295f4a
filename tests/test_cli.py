"""The ``purerl`` command line, run in-process through ``cli.main(argv)``."""

import csv
import dataclasses
import json

import jax
import numpy as np
import pytest

from purerl import cli, envs
from purerl.agents import td3, td3_bc
from purerl.loops import checkpoint, common, offline, online, plots, writers

TINY = ["--set", "hidden=32,32", "--loop-set", "batch_size=32", "--loop-set", "eval_episodes=2"]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("purerl: error: ")
    return err


def test_train_writes_metrics_curve_config_checkpoint_and_table(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "td3", "--env", "point_mass", "--seeds", "2", "--steps", "2000"]
    argv += ["--out", str(out), "--set", "exploration_noise=0.2", *TINY]
    argv += ["--tensorboard", str(tmp_path / "tb")]
    assert cli.main(argv) == 0
    stdout = capsys.readouterr().out

    # Defaults scaled to --steps are chosen and printed.
    assert "eval_every=200, warmup_steps=200, buffer_size=2000" in stdout
    config = json.loads((out / "config.json").read_text())
    assert config["agent_config"]["hidden"] == [32, 32]
    assert config["agent_config"]["exploration_noise"] == 0.2
    assert config["agent_config"]["policy_delay"] == td3.Config().policy_delay
    loop_config = config["loop_config"]
    assert (loop_config["warmup_steps"], loop_config["eval_every"]) == (200, 200)
    assert (loop_config["batch_size"], loop_config["buffer_size"]) == (32, 2000)
    assert loop_config["n_step"] == 1 and loop_config["progress"] is True
    assert config["loop"] == "online" and config["seeds"] == 2
    assert {"purerl", "jax", "orbax-checkpoint"} <= set(config["versions"])

    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 10
    assert [int(r["env_steps"]) for r in rows[:10]] == list(range(200, 2001, 200))
    assert [r["seed"] for r in rows] == ["0"] * 10 + ["1"] * 10
    assert {"eval/return", "loss/critic", "loss/actor", "q/mean"} <= set(rows[0])
    assert rows[0]["loss/critic"] == "nan"  # the first period is all warm-up
    assert all(np.isfinite(float(r["eval/return"])) for r in rows)

    # The printed table holds the final eval return's mean ± CI computed from the CSV.
    metrics = writers.read_csv(out / "metrics.csv")
    mean, half, n = plots.final_ci(metrics)
    assert n == 2
    assert f"| td3/point_mass | 2000 | 2 | {plots.format_ci(mean, half)} |" in stdout
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG"
    for seed in (0, 1):  # TensorBoard event files, one directory per seed
        assert list((tmp_path / "tb" / f"seed_{seed}").glob("events.out.tfevents.*"))

    # The checkpoint is the final carry of both seeds, replay buffer included.
    env = envs.make("point_mass")
    algo = td3.make(td3.Config(hidden=(32, 32), exploration_noise=0.2), env.spec)
    loop = online.make_loop(algo, env, online.Config(**{**loop_config, "progress": False}))
    like = jax.eval_shape(jax.vmap(loop.init), jax.random.split(jax.random.key(0), 2))
    carry = checkpoint.restore(out / "checkpoint", like=like)
    np.testing.assert_array_equal(carry.iteration, [2000, 2000])
    np.testing.assert_array_equal(carry.agent.step, [1800, 1800])  # 2000 - 200 warm-up updates
    np.testing.assert_array_equal(carry.buffer.size, [2000, 2000])
    assert checkpoint.read_metadata(out / "checkpoint")["metadata"]["agent"] == "td3"

    # --config reruns it from its config.json: the same metrics, bit for bit.
    again = tmp_path / "again"
    assert cli.main(["train", "--config", str(out), "--out", str(again), "--no-progress"]) == 0
    assert (again / "metrics.csv").read_bytes() == (out / "metrics.csv").read_bytes()
    rerun = json.loads((again / "config.json").read_text())
    assert {k: rerun[k] for k in ("agent_config", "seeds", "seed", "env")} == {
        k: config[k] for k in ("agent_config", "seeds", "seed", "env")
    }
    assert rerun["loop_config"] == {**loop_config, "progress": False}


def _write_run(tmp_path, **changes):
    """A config.json as ``purerl train`` writes it (its loop and agent fields, no run)."""
    run = {
        "agent": "td3", "env": "point_mass", "backend": None, "seeds": 3, "seed": 7,
        "loop": "online",
        "agent_config": {**dataclasses.asdict(td3.Config()), "hidden": [16, 16]},
        "loop_config": dataclasses.asdict(online.Config(total_steps=2000, eval_every=500)),
        "argv": ["train", "td3", "--env", "point_mass", "--steps", "2000", "--out", "x"],
    }  # fmt: skip
    run.update(changes)
    path = tmp_path / "run"
    path.mkdir(exist_ok=True)
    (path / "config.json").write_text(json.dumps(run))
    return path


def test_config_argv_pins_every_recorded_setting_and_lets_given_flags_win(tmp_path):
    run = _write_run(tmp_path)
    argv = cli.config_argv(
        str(run), ["train", "--config", str(run), "--set", "tau=0.01", "--seeds", "2", "--out", "o"]
    )
    args = cli.build_parser().parse_args(argv)
    assert (args.agent, args.env, args.seed, args.steps, args.eval_every) == (
        "td3", "point_mass", 7, 2000, 500
    )  # fmt: skip
    assert args.seeds == 2  # given beside --config
    agent = td3.Config(**cli.parse_overrides(td3.Config, args.set, "--set"))
    assert agent == td3.Config(hidden=(16, 16), tau=0.01)
    loop = cli.parse_overrides(online.Config, args.loop_set, "--loop-set")
    assert loop["warmup_steps"] == online.Config().warmup_steps and "progress" not in loop
    assert "n_step" not in loop  # follows the agent's n_step, as in any train run


def test_config_errors_are_one_line_usage_errors(tmp_path, capsys):
    run = _write_run(tmp_path)
    cases = [
        (["train", "--config", str(tmp_path / "nope"), "--out", "o"], "no such file"),
        (["train", "sac", "--config", str(run), "--out", "o"], "trains 'td3', not 'sac'"),
        (["train-offline", "--config", str(run), "--out", "o"], "is a 'purerl train' run"),
        (["train", "td3", "--steps", "10", "--out", "o"], "required: --env (or --config FILE)"),
    ]
    for argv, message in cases:
        assert cli.main(argv) == cli.EXIT_USAGE, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    (run / "config.json").write_text("{}")
    assert cli.main(["train", "--config", str(run), "--out", "o"]) == cli.EXIT_USAGE
    assert "not a config.json written by purerl train" in capsys.readouterr().err


def test_config_of_an_offline_run_keeps_its_dataset_and_dataset_seed(tmp_path):
    run = _write_run(
        tmp_path,
        agent="td3_bc",
        loop="offline",
        dataset="point_mass-medium",
        env="point_mass",
        agent_config=dataclasses.asdict(td3_bc.Config()),
        loop_config=dataclasses.asdict(offline.Config(total_steps=100, eval_every=50)),
        argv=["train-offline", "td3_bc", "--dataset", "point_mass-medium", "--dataset-seed", "4",
              "--steps", "100", "--out", "x"],
    )  # fmt: skip
    argv = cli.config_argv(str(run), ["train-offline", "--config", str(run), "--out", "o"])
    args = cli.build_parser().parse_args(argv)
    assert (args.agent, args.dataset, args.dataset_seed, args.steps) == (
        "td3_bc", "point_mass-medium", 4, 100
    )  # fmt: skip


def test_list_agents_and_envs(capsys):
    assert cli.main(["agents"]) == 0
    lines = capsys.readouterr().out.splitlines()
    td3_line = next(line for line in lines if line.split()[0] == "td3")
    assert "TD3" in td3_line
    assert cli.main(["envs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(envs.list_envs())
    assert any(line.split()[0] == "point_mass" and "point mass" in line for line in lines)


def test_agents_name_lists_the_config_and_loop_fields_with_defaults_and_sources(capsys):
    assert cli.main(["agents", "td3_bc"]) == 0
    out = capsys.readouterr().out
    rows = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
    # td3_bc's own field, and one it inherits from TD3 with TD3's source comment
    assert rows["alpha"].split()[1:3] == ["float", "2.5"] and "sec. 5" in rows["alpha"]
    assert rows["policy_noise"].split()[1:3] == ["float", "0.2"] and "6.1" in rows["policy_noise"]
    assert "purerl.loops.offline.Config ('purerl train-offline')" in out
    assert rows["batch_size"].split()[1:3] == ["int", "256"]
    assert cli.main(["agents", "ppo"]) == 0
    assert "purerl.loops.on_policy.Config ('purerl train')" in capsys.readouterr().out


def test_agents_unknown_name_is_a_usage_error(capsys):
    assert cli.main(["agents", "td4"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("purerl: error: unknown agent 'td4'; known agents: bc, d4pg")


BASE = ["train", "td3", "--env", "point_mass", "--steps", "2000"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["train", "nope", "--env", "point_mass", "--steps", "10"],
            "unknown agent 'nope'; known agents: bc, d4pg, dqn, ppo, qsarsa, sac, td3, td3_bc, td3_cvae",
        ),
        (
            ["train", "td3", "--env", "nowhere", "--steps", "10"],
            "unknown env 'nowhere'; known envs: ",
        ),
        (
            [*BASE, "--set", "hiden=32"],
            "unknown --set key 'hiden' for td3.Config; valid keys: actor_lr, critic_lr, hidden, ",
        ),
        (
            [*BASE, "--loop-set", "batchsize=3"],
            "unknown --loop-set key 'batchsize' for online.Config; valid keys: total_steps, ",
        ),
        (
            [*BASE, "--set", "hidden=a,b"],
            "cannot parse --set hidden='a,b' for td3.Config: 'a' is not an integer; expected comma-separated ints (e.g. 64,64)",
        ),
        (
            [*BASE, "--set", "actor_lr=fast"],
            "cannot parse --set actor_lr='fast' for td3.Config: 'fast' is not a number; expected float",
        ),
        ([*BASE, "--set", "hidden"], "--set expects key=value, got 'hidden'"),
        (
            [*BASE, "--set", "discount=1.5"],
            "invalid agent config: td3.Config.discount must be in [0, 1], got 1.5",
        ),
        (
            [*BASE, "--set", "policy_delay=0"],
            "invalid agent config: td3.Config.policy_delay must be an int >= 1, got 0",
        ),
        (
            [*BASE, "--loop-set", "batch_size=0"],
            "invalid loop config: online.Config.batch_size must be a positive int, got 0",
        ),
        (
            [*BASE, "--num-envs", "3"],
            "--steps 2000 is not a multiple of the 3 env steps the loop takes per iteration; use e.g. --steps 1998",
        ),
        (
            [*BASE, "--eval-every", "300"],
            "invalid loop config: online.Config.total_steps (2000) must be a multiple of eval_every (300)",
        ),
        ([*BASE, "--seeds", "0"], "--seeds must be >= 1, got 0"),
        ([*BASE, "--num-envs", "0"], "--num-envs must be a positive integer, got 0"),
        (
            [*BASE, "--seed", str(2**64)],
            f"argument --seed: {2**64} does not fit a 64-bit PRNG seed",
        ),
        (
            [*BASE, "--loop-set", "total_steps=4000"],
            "--loop-set total_steps=4000 conflicts with --steps 2000; give it once",
        ),
        ([*BASE, "--set", "hidden="], "invalid agent config: td3.Config.hidden is empty"),
        (
            [*BASE, "--loop-set", "warmup_steps=2000"],
            "--loop-set warmup_steps=2000 must be smaller than --steps 2000",
        ),
        (["train", "td3", "--env", "point_mass", "--steps", "0"], "--steps must be >= 1, got 0"),
        (
            ["train", "td3", "--env", "cartpole", "--steps", "100"],
            "TD3 needs continuous actions; env 'cartpole' is discrete",
        ),
        (["train", "td3", "--steps", "100"], "the following arguments are required: --env"),
        (
            ["train", "td3", "--env", "point_mass", "--steps", "many"],
            "argument --steps: invalid int value: 'many'",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    if "--out" not in argv and argv[-1] != "many":
        argv = [*argv, "--out", str(out)]
    assert cli.main(argv) == 2
    err = _error_line(capsys)
    assert message in err
    assert not out.exists()  # nothing is written before the input is known to be good


def test_eval_period_search_is_fast_for_huge_step_counts():
    """The default eval period is the divisor of --steps (a multiple of the loop's unit) nearest
    10% of the run capped at the loop's period; --steps 1e12 used to hang in a loop over every
    multiple of the unit (issue 20)."""
    assert cli._eval_every(10**12, 1, 5000) == 5000
    # 10**12 + 1 = 73 * 137 * 99990001: divisors near 5000 are 137 (4863 away) and 10001 (5001)
    assert cli._eval_every(10**12 + 1, 1, 5000) == 137
    assert cli._eval_every(131072, 2048, 16384) == 16384


def test_parse_value_by_field_type():
    assert cli.parse_value("64,64", tuple[int, ...]) == (64, 64)
    assert cli.parse_value("(3, 4)", tuple[int, ...]) == (3, 4)
    assert cli.parse_value("", tuple[int, ...]) == ()
    assert cli.parse_value("1e6", int) == 1_000_000
    assert cli.parse_value("3e-4", float) == 3e-4
    assert cli.parse_value("False", bool) is False and cli.parse_value("yes", bool) is True
    assert cli.parse_value("none", int | None) is None and cli.parse_value("5", int | None) == 5
    with pytest.raises(ValueError, match="integer"):
        cli.parse_value("2.5", int)
    with pytest.raises(ValueError, match="true or false"):
        cli.parse_value("maybe", bool)


def test_nonfinite_run_names_seed_and_step(tmp_path, capsys, monkeypatch):
    # The loops' own tests run real NaN-producing envs; here a stand-in for run_periods returns what
    # a run whose seed 1 saw a NaN reward at env step 70 returns, without compiling a second run.
    calls = []

    def fake_run_periods(loop, key, num_seeds, num_periods, args=(), on_period=None, **kw):
        kw["on_compiled"](0.0, 0.0)
        calls.append((num_seeds, num_periods, int(jax.random.key_data(key)[-1])))
        steps = np.arange(20, 201, 20)[None].repeat(2, 0)
        bad = np.where(steps >= 70, 70, -1) * np.array([[0], [1]]) + np.array([[-1], [0]])
        metrics = {"env_steps": steps, "eval/return": np.ones((2, 10)), "check/nonfinite_step": bad}
        return None, metrics

    monkeypatch.setattr(common, "run_periods", fake_run_periods)
    out = tmp_path / "nan"
    argv = ["train", "td3", "--env", "point_mass", "--steps", "200", "--seeds", "2", "--seed", "3"]
    assert cli.main([*argv, "--out", str(out), "--no-progress"]) == 3  # diverged, not usage
    assert calls == [(2, 10, 3)]  # the CLI checks itself, after writing the metrics
    err = _error_line(capsys)
    assert "NaN or inf in the observation or reward first at env step 70 of seed 1" in err
    assert str(out / "metrics.csv") in err  # the metrics up to the failure are kept
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["check/nonfinite_step"] for r in rows[10:]] == ["-1", "-1", "-1"] + ["70"] * 7
    assert [r["check/nonfinite_step"] for r in rows[:10]] == ["-1"] * 10
    assert not (out / "checkpoint").exists() and not (out / "curve.png").exists()


def test_missing_logging_package_fails_before_training(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    argv = ["train", "td3", "--env", "point_mass", "--steps", "2000", "--out", str(tmp_path)]
    assert cli.main([*argv, "--wandb", "myproject"]) == 2
    assert "pip install purerl[wandb]" in _error_line(capsys)
    assert not (tmp_path / "metrics.csv").exists()


def _point_mass_dataset(n: int = 400):
    """Random point_mass transitions (obs 4, action 2), episodes of 100 steps."""
    from purerl.datasets import validate

    rng = np.random.default_rng(0)
    timeouts = np.zeros(n, bool)
    timeouts[99::100] = True
    arrays = {
        "observations": rng.normal(size=(n, 4)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (n, 2)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "next_observations": rng.normal(size=(n, 4)).astype(np.float32),
        "terminals": np.zeros(n, bool),
        "timeouts": timeouts,
    }
    return validate(arrays, {"env": "point_mass", "max_episode_steps": 100})


def test_train_offline_dataset_path_without_suffix(tmp_path, capsys, monkeypatch):
    # Bug (issue 12): `--dataset runs/mydata` died with an uncaught TypeError (the CLI passed the
    # named-dataset keywords seed/progress to the file reader for anything without a suffix).
    from purerl.datasets import io

    def fake_run_periods(loop, key, num_seeds, num_periods, args=(), **kw):
        kw["on_compiled"](0.0, 0.0)
        (data,) = args  # the loaded dataset, on device; training itself is tested in tests/loops
        assert data.transitions.obs.shape == (400, 4)
        return None, {"updates": np.array([[10, 20]]), "eval/return": np.array([[-50.0, -40.0]])}

    monkeypatch.setattr(common, "run_periods", fake_run_periods)
    monkeypatch.chdir(tmp_path)
    io.save("runs/mydata.npz", _point_mass_dataset())
    argv = ["train-offline", "td3_bc", "--steps", "20", "--eval-every", "10", "--no-progress"]
    argv += ["--set", "hidden=8,8", "--loop-set", "batch_size=16"]
    assert cli.main([*argv, "--dataset", "runs/mydata", "--out", "run"]) == 0
    assert "dataset: runs/mydata (400 transitions, env point_mass)" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "config.json").read_text())["dataset"] == "runs/mydata"

    # Said clearly when it cannot: one line naming the path and the accepted forms.
    assert cli.main([*argv, "--dataset", "runs/none", "--out", "run2"]) == 2
    err = _error_line(capsys)
    assert "no dataset file at runs/none (nor runs/none.npz/.hdf5/.h5)" in err
    assert "a registry name <env>-<level>" in err
    assert cli.main([*argv, "--dataset", "runs", "--out", "run2"]) == 2
    assert "runs is a directory, not a dataset file" in _error_line(capsys)
    seeded = [*argv, "--dataset", "runs/mydata", "--dataset-seed", "3", "--out", "run2"]
    assert cli.main(seeded) == 2
    assert "seed only apply to named datasets" in _error_line(capsys)
    assert not (tmp_path / "run2").exists()


def test_unwritable_out_fails_before_training(tmp_path, capsys):
    """--out under a regular file cannot be created: exit 2 with a named error before anything is
    compiled (a read-only --out used to lose a finished run at the first write, issue 20)."""
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    argv = [*BASE, "--out", str(blocker / "run"), "--no-progress"]
    assert cli.main(argv) == 2
    err = _error_line(capsys)
    assert f"cannot write to --out {blocker / 'run'}" in err


def test_train_curve_and_table_stay_inside_the_envs_return_range(tmp_path, capsys, monkeypatch):
    # As for the quickstart's curve.png (inverted_pendulum, returns in [0, 1000]), here on cartpole
    # (returns in [0, 500], no brax import): seeds ending at 500, 500 and 470 give a Student-t
    # interval up to ~533 and a bootstrap one up to 500; the CLI passes the env's bounds, so neither
    # leaves [0, 500]. Training is faked (no compile).
    def fake_run_periods(loop, key, num_seeds, num_periods, args=(), on_period=None, **kw):
        kw["on_compiled"](0.0, 0.0)
        steps = np.array([[1000, 2000]] * 3)
        ret = np.array([[20.0, 500.0], [450.0, 500.0], [0.0, 470.0]])
        return None, {"env_steps": steps, "eval/return": ret}

    figures = []
    curve = plots.learning_curve
    monkeypatch.setattr(common, "run_periods", fake_run_periods)
    monkeypatch.setattr(plots, "learning_curve", lambda *a, **k: figures.append(curve(*a, **k)))
    argv = ["train", "dqn", "--env", "cartpole", "--seeds", "3", "--steps", "2000"]
    argv += ["--no-checkpoint", "--no-progress", "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 0
    stdout = capsys.readouterr().out
    assert "clipped to [0, 500]" in stdout
    # mean 490, s = sqrt((10^2 + 10^2 + 20^2) / 2) = 17.321, se = s / sqrt(3) = 10,
    # t_{0.975, 2} = 4.3027 -> half 43.03 -> [446.97, 533.03] clipped to [446.97, 500]
    assert "| dqn/cartpole | 2000 | 3 | 490.00 [446.97, 500.00] | " in stdout
    (ax,) = figures[0].axes
    band = np.concatenate([p.vertices[:, 1] for c in ax.collections for p in c.get_paths()])
    assert band.size and band.min() >= 0.0 and band.max() <= 500.0
    assert (tmp_path / "run" / "curve.png").read_bytes()[:4] == b"\x89PNG"


def _strict_json(path) -> dict:
    """``json.loads`` that rejects NaN/Infinity (as every other JSON reader does)."""

    def reject(token):
        raise ValueError(f"{path} holds {token}: not JSON")

    return json.loads(path.read_text(), parse_constant=reject)


def test_diverging_run_exits_3_naming_seed_step_and_quantity(tmp_path, capsys):
    """Issue 20's example (at a tiny size): DQN with lr=1e30 used to exit 0 with NaN losses. Now
    the run freezes at the first NaN/inf loss or parameter and exits 3 with one line."""
    out = tmp_path / "x"
    argv = ["train", "dqn", "--env", "cartpole", "--set", "lr=1e30", "--steps", "400"]
    argv += ["--set", "hidden=8,8", "--loop-set", "batch_size=16", "--loop-set", "eval_episodes=1"]
    assert cli.main([*argv, "--out", str(out), "--no-progress", "--no-checkpoint"]) == 3
    err = _error_line(capsys)
    assert "NaN or inf in " in err and "of seed 0" in err
    assert "update metric loss/" in err or "agent state " in err
    assert "learning rate" in err and str(out / "metrics.csv") in err
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert int(rows[-1]["check/nonfinite_step"]) > 40  # after the 40 warm-up steps
    assert _strict_json(out / "config.json")["agent_config"]["lr"] == 1e30


def test_json_outputs_hold_no_nan(tmp_path, monkeypatch):
    """A NaN in a summary used to be written as the bare token NaN (not JSON): now null, with the
    paths listed under nonfinite_as_null."""
    from purerl.alignment import pipeline

    monkeypatch.setattr(pipeline, "run", lambda config, progress: None)
    monkeypatch.setattr(pipeline, "report", lambda results: "report")
    monkeypatch.setattr(pipeline, "param_arrays", lambda results: {"w": np.zeros(2)})
    summary = {"accuracy": {"wa": float("nan"), "ens": 0.5}, "curve": [1.0, float("inf")]}
    monkeypatch.setattr(pipeline, "summary", lambda results: summary)
    assert cli.main(["align", "--out", str(tmp_path / "a"), "--rl-steps", "0"]) == 0
    got = _strict_json(tmp_path / "a" / "summary.json")
    assert got["accuracy"] == {"wa": None, "ens": 0.5} and got["curve"] == [1.0, None]
    assert got["nonfinite_as_null"] == ["/accuracy/wa", "/curve/1"]


def _fake_run(monkeypatch):
    def fake_run_periods(loop, key, num_seeds, num_periods, args=(), on_period=None, **kw):
        kw["on_compiled"](0.0, 0.0)
        steps = np.arange(20, 201, 20)[None]
        return None, {"env_steps": steps, "eval/return": np.ones((1, 10))}

    monkeypatch.setattr(common, "run_periods", fake_run_periods)


def test_non_empty_out_needs_overwrite(tmp_path, capsys, monkeypatch):
    """Issue 20: a reused --out was silently overwritten, and a stale checkpoint/ or curve.png of
    the earlier run stayed beside the new CSV."""
    _fake_run(monkeypatch)
    out = tmp_path / "run"
    (out / "checkpoint").mkdir(parents=True)
    (out / "stale.txt").write_text("from an earlier run")
    argv = ["train", "td3", "--env", "point_mass", "--steps", "200", "--no-progress"]
    argv += ["--no-checkpoint", "--out", str(out)]
    assert cli.main(argv) == 2
    assert f"--out {out} is not empty" in (err := _error_line(capsys)) and "--overwrite" in err
    assert (out / "stale.txt").exists()  # nothing touched
    # Bad arguments are reported before anything is cleared.
    assert cli.main([*argv, "--overwrite", "--set", "hiden=3"]) == 2
    assert "unknown --set key" in _error_line(capsys) and (out / "stale.txt").exists()
    assert cli.main([*argv, "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "curve.png", "metrics.csv"]
    capsys.readouterr()
    # train-offline and align refuse it the same way, before loading data or compiling.
    base = ["--steps", "20", "--out", str(out)]
    assert cli.main(["train-offline", "td3_bc", "--dataset", "nowhere-medium", *base]) == 2
    assert f"--out {out} is not empty" in _error_line(capsys)
    assert cli.main(["align", "--out", str(out)]) == 2
    assert f"--out {out} is not empty" in _error_line(capsys)


def test_overwrite_never_clears_a_file_root_home_or_cwd(tmp_path, capsys, monkeypatch):
    _fake_run(monkeypatch)
    home, work = tmp_path / "home", tmp_path / "home" / "work"
    work.mkdir(parents=True)
    (work / "keep.txt").write_text("mine")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    argv = ["train", "td3", "--env", "point_mass", "--steps", "200", "--no-progress", "--overwrite"]
    for out, says in (
        (".", "is (or holds) the current directory"),
        (str(work), "is (or holds) the current directory"),
        (str(home), "is (or holds) the home directory"),
        (str(tmp_path), "is (or holds) the home directory"),  # above home
        ("/", "is (or holds) /"),
        ("keep.txt", "is a file, not a directory"),
    ):
        assert cli.main([*argv, "--out", out]) == 2, out
        assert says in _error_line(capsys), out
    assert (work / "keep.txt").read_text() == "mine"


def test_version_and_exit_codes_in_help(capsys):
    from importlib import metadata

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"purerl {metadata.version('purerl')}"
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "exit status:" in text and "3  diverged" in text and "2  usage or bad input" in text
