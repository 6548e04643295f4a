"""Rewarders and imitation methods. ``REGISTRY`` maps a rewarder's name to where it lives.

    make = imitation.get("alive_bonus")                   # make(config, spec) -> Rewarder
    rewarder = make(imitation.config_class("alive_bonus")(bonus=1.0), env.spec)
    train = loops.online.make_train(algo, env, config, rewarder=rewarder)

Each entry names its ``make(config, spec) -> Rewarder`` function and its ``Config`` class as
``"module:attribute"`` strings, so a rewarder can live in any module (a method's own module, e.g. an
agent's ``make_rewarder``) and is imported only when asked for.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

from purerl.imitation import rewarders


class Entry(NamedTuple):
    """A registered rewarder: ``make`` and ``config`` as ``"module:attribute"``, one line of text."""

    make: str
    config: str
    description: str


REGISTRY: dict[str, Entry] = {
    "env_reward": Entry(
        "purerl.imitation.rewarders:make_env_reward",
        "purerl.imitation.rewarders:EnvRewardConfig",
        "the env's own reward, passed through (the identity of the rewarder seam)",
    ),
    "alive_bonus": Entry(
        "purerl.imitation.rewarders:make_alive_bonus",
        "purerl.imitation.rewarders:AliveBonusConfig",
        "a constant per non-terminal step (the locomotion tasks' healthy reward)",
    ),
    "goal_distance": Entry(
        "purerl.imitation.rewarders:make_goal_distance",
        "purerl.imitation.rewarders:GoalDistanceConfig",
        "minus the distance of chosen observation entries to a goal (dense goal reaching)",
    ),
    "td3_cvae": Entry(
        "purerl.agents.td3_cvae:make_rewarder",
        "purerl.agents.td3_cvae:Config",
        "TD3-CVAE's anti-exploration penalty -alpha b(s, a), a CVAE's reconstruction error (learned)",
    ),
}


def resolve(target: str) -> Any:
    """The object a ``"module:attribute"`` string names (``"purerl.imitation.rewarders:make_env_reward"``)."""
    module, sep, attribute = target.partition(":")
    if not sep or not module or not attribute:
        raise ValueError(f"expected 'module:attribute', got {target!r}")
    return getattr(importlib.import_module(module), attribute)


def _entry(name: str) -> Entry:
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise ValueError(f"unknown rewarder {name!r}; known rewarders: {known}")
    return REGISTRY[name]


def get(name: str):
    """The rewarder ``name``'s ``make(config, spec) -> Rewarder`` function."""
    return resolve(_entry(name).make)


def config_class(name: str) -> type:
    """The rewarder ``name``'s ``Config`` class (a frozen dataclass; defaults are the method's)."""
    return resolve(_entry(name).config)


def list_rewarders() -> dict[str, str]:
    """``{name: one-line description}`` of the rewarders that import on this install."""
    out = {}
    for name, entry in REGISTRY.items():
        try:
            get(name)
        except ImportError:
            continue
        out[name] = entry.description
    return out


__all__ = ["REGISTRY", "Entry", "config_class", "get", "list_rewarders", "resolve", "rewarders"]
