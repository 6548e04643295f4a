"""``purerl align``: the toy RLHF pipeline from the command line, run in-process.

The sizes match tests/alignment/test_warm_pipeline.py, so in one pytest process the pipeline reuses
that file's compiles. The one full run also checks the numbers of the old CLI (before
``alignment.pipeline``) on a machine that recorded them.
"""

import dataclasses
import json
import pathlib

import numpy as np
import pytest

from purerl import cli
from purerl.alignment import pipeline
from tests.cpu_family import pick

DATA = pathlib.Path(__file__).parent / "data"
# What ``purerl align --seed 3 --baklava`` with TINY's flags wrote, per machine that recorded it
# (tests/cpu_family.py): first by the old CLI (commit 0bd01c5, before alignment.pipeline), see each
# file's ``_made_by``. The chain samples tokens, so another CPU's round-off moves its numbers
# beyond any float tolerance (the proxy reward of the RL curve by 1%): only the machine's own
# recording is compared, bit for bit.
RECORDS = {
    "AuthenticAMD": DATA / "align_tiny_seed3.json",
    "GenuineIntel/avx512": DATA / "align_tiny_seed3.GenuineIntel-avx512.json",
    "AuthenticAMD/25/1/avx2": DATA / "align_tiny_seed3.AuthenticAMD-25-1-avx2.json",
}
RECORD, EXACT = pick(RECORDS)

TINY = [
    "--lm-set", "d_model=16", "--lm-set", "num_layers=1",
    "--pretrain-steps", "20", "--sft-steps", "20", "--batch-size", "16",
    "--pairs", "64", "--eval-pairs", "64",
    "--rms", "3", "--rm-steps", "6", "--rm-set", "probe_steps=20",
    "--warm-set", "batch_size=16", "--warm-set", "learning_rates=3e-3,1e-3",
    "--warm-set", "dropout_rates=0,0.1",
    "--bon-n", "4", "--bon-prompts", "8",
    "--rl-steps", "4", "--rl-eval-every", "2", "--rl-set", "batch_size=4",
]  # fmt: skip


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("purerl: error: ")
    return err


def _assert_same(actual, expected, path="summary"):
    if isinstance(expected, dict):
        assert sorted(actual) == sorted(expected), path
        for k in expected:
            _assert_same(actual[k], expected[k], f"{path}/{k}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _assert_same(a, e, f"{path}[{i}]")
    else:
        assert actual == expected, path


def test_align_writes_params_summary_and_report(tmp_path, capsys, monkeypatch):
    """One tiny run of the whole pipeline through the CLI: its outputs, the pipeline's results
    behind them, and (on a machine with its own recording) every number of the old CLI."""
    runs, stages = [], []
    real_run = pipeline.run

    def spy(config, progress=None):
        results = real_run(config, lambda *a: (stages.append(a[0]), progress and progress(*a)))
        runs.append(results)
        return results

    monkeypatch.setattr(pipeline, "run", spy)
    out = tmp_path / "align"
    assert cli.main(["align", "--out", str(out), "--seed", "3", "--baklava", *TINY]) == 0
    stdout = capsys.readouterr().out
    assert stages == ["pretrain", "sft", "preferences", "reward_models", "policy"]
    assert "| WARM (WA) |" in stdout and "| ENS |" in stdout and "gold (oracle)" in stdout

    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 3 and summary["warm_config"]["num_members"] == 3
    assert summary["sft"]["baklava_checkpoints"] == [10, 20]
    assert summary["members"]["checkpoint"] == [0, 1, 0]
    assert summary["members"]["learning_rate"] == pytest.approx([3e-3, 1e-3, 3e-3])
    acc = summary["accuracy"]
    for s in ("in_distribution", "shifted", "train", "train_corrupted", "train_clean"):
        for m in ("member_0", "member_2", "member_mean", "wa", "ens"):
            assert 0.0 <= acc[f"{s}/{m}"] <= 1.0
    assert summary["preferences"]["flipped"] > 0  # --noise defaults to 0.25
    assert len(summary["interpolation"]["wa"]) == 5
    bon = summary["best_of_n"]
    assert bon["n"] == [1, 2, 4]
    # N = 1 is the first sample whatever selects it; the gold oracle is never beaten.
    firsts = {bon[f"gold/{m}"][0] for m in ("member_0", "wa", "ens", "gold")}
    assert len(firsts) == 1
    for m in ("member_0", "member_1", "member_2", "wa", "ens"):
        assert all(g <= o + 1e-6 for g, o in zip(bon[f"gold/{m}"], bon["gold/gold"], strict=True))
    policy = summary["policy"]  # REINFORCE against the WARM proxy, evaluated every 2 updates
    assert policy["proxy"] == "wa" and policy["rl_config"]["batch_size"] == 4
    assert policy["curve"]["updates"] == [0, 2, 4]
    assert policy["curve"]["eval/kl_sft"][0] == pytest.approx(0.0, abs=1e-5)  # row 0 is the SFT
    for k in ("eval/reward", "eval/gold", "eval/kl_sft", "eval/spurious"):
        assert len(policy["curve"][k]) == 3 and np.all(np.isfinite(policy["curve"][k]))
    assert 0.0 <= policy["gold_win_rate_vs_sft"] <= 1.0
    assert "## Policy: REINFORCE against 'wa'" in stdout

    params = np.load(out / "params.npz")
    assert params["rm/members/head"].shape == (3, 16)
    assert params["rm/wa/head"].shape == (16,)
    np.testing.assert_allclose(params["rm/wa/head"], params["rm/members/head"].mean(0), rtol=1e-5)
    assert params["sft/token_embed/embeddings"].shape == (16, 16)
    assert params["sft_checkpoints/token_embed/embeddings"].shape == (2, 16, 16)
    assert params["pretrained/final_ln/scale"].shape == (16,)
    assert params["policy/token_embed/embeddings"].shape == (16, 16)
    md = (out / "summary.md").read_text()
    assert md.startswith("# purerl align (seed 3)") and "| member 2 (ckpt 0) |" in md

    # The files are views of the pipeline's results.
    (results,) = runs
    assert summary["policy"]["rl_config"] == dataclasses.asdict(results.config.rl)
    np.testing.assert_array_equal(
        params["policy/final_ln/scale"], results.policy.params["final_ln"]["scale"]
    )
    assert md == f"# purerl align (seed 3)\n\n{pipeline.report(results)}\n"

    # The numbers of the old CLI with the same flags, bit for bit, where this machine recorded them
    # (elsewhere only the checks above run: see RECORDS).
    if not EXACT:
        return
    expected = json.loads(RECORD.read_text())
    expected.pop("_made_by")
    actual = {k: summary[k] for k in expected}
    actual["policy"] = {k: v for k, v in summary["policy"].items() if k in expected["policy"]}
    _assert_same(actual, expected)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--rms", "0"], "--rms must be >= 1"),
        (["--noise", "1.5"], "--noise must be a probability"),
        (["--lm-lr", "0"], "--lm-lr must be > 0"),
        (["--lm-set", "depth=3"], "unknown --lm-set key 'depth'"),
        (["--lm-set", "d_model=15"], "invalid config: LMConfig.d_model=15"),
        (["--warm-set", "learning_rates=fast"], "cannot parse --warm-set learning_rates"),
        (["--pairs", "8"], "--pairs 8 is smaller than the reward models' batch size"),
        (["--baklava", "--rms", "1"], "--baklava"),
        (["--task-set", "vocab_size=40", "--lm-set", "vocab_size=16"], "LMConfig.vocab_size=16 <"),
        (["--rl-steps", "-1"], "--rl-steps must be >= 0"),
        (["--rl-steps", "120", "--rl-eval-every", "50"], "must be a multiple of --rl-eval-every"),
        (["--rl-set", "num_samples=1"], "invalid config: RLConfig: baseline 'rloo' needs"),
    ],
)
def test_align_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, message):
    assert cli.main(["align", "--out", str(tmp_path / "x"), *argv]) == 2
    assert message in _error_line(capsys)
    assert not (tmp_path / "x").exists()  # nothing is written before the input is valid


def test_diverging_pretraining_exits_3(tmp_path, capsys):
    """Issue 20: a diverged pre-training used to exit 0, report every accuracy as 0.000 and write
    NaN into summary.json. Now the stage freezes at its first NaN/inf update and the run exits 3
    naming the stage, the update, the quantity and the seed; no summary is written. (The sizes of
    tests/alignment/test_warm_pipeline.py's divergence test: one compile for both.)"""
    out = tmp_path / "align"
    argv = ["align", "--out", str(out), "--lm-lr", "1e30", "--pretrain-steps", "3"]
    argv += ["--sft-steps", "3", "--batch-size", "16", *TINY[:4]]
    assert cli.main(argv) == 3
    err = _error_line(capsys)
    assert "of pre-training, seed 0 (the update diverged" in err and "learning rate" in err
    assert not (out / "summary.json").exists()
