"""``alignment.pipeline``: the stages of ``purerl align`` as functions of one config.

The identity test runs the pipeline at the sizes of tests/alignment/test_align_cli.py (so in one
pytest process it reuses that file's compiles) and compares every number with the summary that
``purerl align`` wrote with the same flags before the pipeline moved out of ``cli.py``
(``data/align_tiny_seed3*.json``, one per machine that recorded it, tests/cpu_family.py): every
number must be equal. A machine without its own recording skips it: the chain samples tokens, so
round-off of another CPU's XLA code changes the numbers beyond any float tolerance (measured: the
proxy reward of the RL curve moves by 1%).
"""

import dataclasses
import json
import pathlib

import numpy as np
import pytest

from purerl.alignment import lm, pipeline, reward_model, tasks, warm
from purerl.alignment import policy_gradient as pg
from tests.cpu_family import machine, pick

DATA = pathlib.Path(__file__).parent / "data"
# The old CLI's numbers per CPU family (tests/cpu_family.py): rounding differs with the vector units.
RECORDS = {
    "AuthenticAMD": DATA / "align_tiny_seed3.json",
    "GenuineIntel/avx512": DATA / "align_tiny_seed3.GenuineIntel-avx512.json",
    "AuthenticAMD/25/1/avx2": DATA / "align_tiny_seed3.AuthenticAMD-25-1-avx2.json",
}
RECORD, EXACT = pick(RECORDS)


def _tiny(**overrides) -> pipeline.PipelineConfig:
    """test_align_cli.TINY with ``--seed 3 --baklava``, as a config."""
    task = tasks.TaskConfig()
    lm_config = pipeline.default_lm_config(task, d_model=16, num_layers=1)
    rm = reward_model.RMConfig(lm=lm_config, probe_steps=20)
    given = dict(
        seed=3,
        task=task,
        lm=lm_config,
        pretrain_steps=20,
        sft_steps=20,
        batch_size=16,
        pairs=64,
        eval_pairs=64,
        warm=warm.WarmConfig(
            rm=rm,
            num_members=3,
            steps=6,
            batch_size=16,
            learning_rates=(3e-3, 1e-3),
            dropout_rates=(0.0, 0.1),
        ),
        baklava=True,
        bon_n=4,
        bon_prompts=8,
        rl=pg.RLConfig(beta=0.01, anchor="sft", learning_rate=1e-4, batch_size=4),
        rl_steps=4,
        rl_eval_every=2,
    )
    given.update(overrides)
    return pipeline.PipelineConfig(**given)


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


def test_run_reproduces_the_numbers_of_the_old_cli_pipeline():
    if not EXACT:
        pytest.skip(
            f"no recording made on this machine ({machine()}): sampled tokens turn round-off into "
            "changes beyond float tolerance (tests/cpu_family.py)"
        )
    stages = []
    results = pipeline.run(_tiny(), lambda stage, value, seconds: stages.append(stage))
    assert stages == ["pretrain", "sft", "preferences", "reward_models", "policy"]
    summary = json.loads(json.dumps(pipeline.summary(results)))  # what the CLI writes
    expected = json.loads(RECORD.read_text())
    expected.pop("_made_by")
    actual = {k: summary[k] for k in expected}
    actual["policy"] = {k: v for k, v in summary["policy"].items() if k in expected["policy"]}
    _assert_same(actual, expected)
    assert summary["policy"]["rl_config"] == dataclasses.asdict(results.config.rl)
    # the report and the parameters are views of the same results
    text = pipeline.report(results)
    assert "| member 2 (ckpt 0) |" in text and "## Policy: REINFORCE against 'wa'" in text
    arrays = pipeline.param_arrays(results)
    assert arrays["sft_checkpoints/token_embed/embeddings"].shape == (2, 16, 16)
    np.testing.assert_array_equal(
        arrays["policy/final_ln/scale"], results.policy.params["final_ln"]["scale"]
    )


def test_stages_skip_what_the_config_turns_off():
    config = _tiny(baklava=False, rl_steps=0, bon_n=0, eval_pairs=0)
    assert config.sft_checkpoints == ()
    assert pipeline.policy_stage(config, None, None, None, None) is None
    assert pipeline.best_of_n(config, None, None, None) is None
    assert pipeline.interpolation(config, None, {}) is None
    keys = pipeline.stage_keys(0)
    prefs, eval_sets = pipeline.preference_data(config, keys["prefs"], keys["eval"])
    assert eval_sets == {} and prefs.chosen.shape[0] == 64


def test_default_config_is_the_cli_default():
    config = pipeline.PipelineConfig()
    assert config.lm_config == lm.LMConfig(
        vocab_size=16, max_len=12, d_model=32, num_heads=2, num_layers=2
    )
    assert config.warm_config == warm.WarmConfig(rm=reward_model.RMConfig(lm=config.lm_config))
    assert (config.rl.beta, config.rl.anchor, config.rl.learning_rate) == (0.01, "sft", 1e-4)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"pairs": 8}, "PipelineConfig.pairs=8 is smaller than WarmConfig.batch_size=16"),
        ({"sft_steps": 0}, "PipelineConfig.sft_steps must be an int >= 1"),
        ({"noise": 1.5}, "PipelineConfig.noise must be in [0, 1]"),
        ({"lm_lr": 0.0}, "PipelineConfig.lm_lr must be > 0"),
        ({"rl_steps": 5}, "rl_steps=5 must be a multiple of rl_eval_every=2"),
        ({"rl_proxy": "best"}, "PipelineConfig.rl_proxy must be one of"),
        ({"sft_steps": 1}, "it needs sft_steps >= 2"),
        ({"lm": lm.LMConfig(vocab_size=16, max_len=12, d_model=32)}, "differs from the pipeline's LM"),
        ({"lm": None}, "differs from the pipeline's LM"),  # the default LM is not the tiny one
        ({"task": tasks.TaskConfig(vocab_size=40)}, "LMConfig.vocab_size=16 < TaskConfig.vocab_size=40"),
    ],
)  # fmt: skip
def test_inconsistent_configs_are_rejected_by_name(overrides, message):
    with pytest.raises(ValueError) as info:
        _tiny(**overrides)
    assert message in str(info.value)


def test_baklava_needs_two_members():
    rm = reward_model.RMConfig(lm=pipeline.default_lm_config(tasks.TaskConfig()))
    with pytest.raises(ValueError, match="needs WarmConfig.num_members >= 2, got 1"):
        pipeline.PipelineConfig(warm=warm.WarmConfig(rm=rm, num_members=1), baklava=True)
