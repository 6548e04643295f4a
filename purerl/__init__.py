"""purerl: pure-JAX algorithms as stateless init/act/loss/update functions over pytrees.

Subpackages (imported on first use): ``core``, ``envs``, ``agents``, ``imitation``, ``alignment``,
``datasets``, ``loops``; ``cli`` is the ``purerl`` command.
"""

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "agents",
    "alignment",
    "cli",
    "core",
    "datasets",
    "envs",
    "experts",  # imported on demand (above loops)
    "imitation",
    "loops",
]
