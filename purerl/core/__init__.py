"""Core types, networks, replay, normalization and pytree helpers shared by every algorithm."""

from purerl.core.types import Algorithm, EnvSpec, Metrics, Network, Transition

__all__ = ["Algorithm", "EnvSpec", "Metrics", "Network", "Transition"]
