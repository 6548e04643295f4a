"""``alignment.pipeline``: the stages of ``purerl align`` as functions of one config.

The identity check against the numbers of the old CLI (before the pipeline moved out of ``cli.py``)
runs in tests/alignment/test_align_cli.py, on the one tiny pipeline run that test makes.
"""

import pytest

from purerl.alignment import lm, pipeline, reward_model, tasks, warm
from purerl.alignment import policy_gradient as pg


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
