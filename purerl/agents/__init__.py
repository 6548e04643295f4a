"""RL agents (online, on-policy and offline). ``REGISTRY`` maps a name to its module (each has ``Config``, ``make``, ``State``)."""

from __future__ import annotations

import importlib

REGISTRY = {
    "td3": (
        "purerl.agents.td3",
        "TD3, twin delayed DDPG (Fujimoto et al. 2018), continuous actions",
    ),
    "sac": (
        "purerl.agents.sac",
        "SAC with learned temperature (Haarnoja et al. 2018b), continuous",
    ),
    "d4pg": ("purerl.agents.d4pg", "D4PG, categorical critic + n-step (Barth-Maron et al. 2018)"),
    "dqn": ("purerl.agents.dqn", "DQN with double / n-step / Munchausen options, discrete actions"),
    "ppo": ("purerl.agents.ppo", "PPO with GAE (Schulman et al. 2017), continuous and discrete"),
    "bc": ("purerl.agents.bc", "behaviour cloning, MSE to dataset actions (offline)"),
    "td3_bc": ("purerl.agents.td3_bc", "TD3+BC (Fujimoto & Gu 2021), offline"),
    "td3_cvae": (
        "purerl.agents.td3_cvae",
        "TD3 + CVAE anti-exploration bonus (Rezaeifar et al. 2022), offline",
    ),
    "qsarsa": (
        "purerl.agents.qsarsa",
        "TD3 / TD3+BC regularized by a SARSA Q of the data (Shi et al. 2023), offline",
    ),
}
_MODULES = REGISTRY  # the name the registry had before it was public


def list_agents() -> dict[str, str]:
    """``{name: one-line description}`` of the agents that import on this install."""
    return {name: desc for name, (_, desc) in REGISTRY.items() if _importable(name)}


def _importable(name: str) -> bool:
    try:
        get(name)
    except ImportError:
        return False
    return True


def get(name: str):
    """The agent module ``name`` (``td3``, ``sac``, ...)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown agent {name!r}; known agents: {', '.join(sorted(REGISTRY))}")
    return importlib.import_module(REGISTRY[name][0])


__all__ = [
    "REGISTRY",
    "bc",
    "d4pg",
    "dqn",
    "get",
    "list_agents",
    "ppo",
    "qsarsa",
    "sac",
    "td3",
    "td3_bc",
    "td3_cvae",
]
