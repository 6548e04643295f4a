"""purerl: pure-JAX algorithms as stateless init/act/loss/update functions over pytrees.

Subpackages (imported on first use): ``core``, ``envs``, ``agents``, ``imitation``, ``alignment``,
``datasets``, ``loops``; ``experts`` (expert training, above loops); ``stats`` (rliable's
aggregate metrics over runs x tasks, numpy only); ``cli`` is the ``purerl`` command.

Importing purerl changes no global JAX setting (and imports no JAX). ``purerl.enable_compilation_cache()``
turns on JAX's persistent compilation cache under purerl's cache directory; the command line does.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "agents",
    "alignment",
    "cli",
    "core",
    "datasets",
    "enable_compilation_cache",
    "envs",
    "experts",  # imported on demand (above loops)
    "imitation",
    "loops",
    "stats",  # imported on demand (numpy only)
]


def enable_compilation_cache(path: str | None = None) -> str | None:
    """JAX's persistent compilation cache at ``path`` (default ``<purerl cache>/jax``); call before
    the first jit. Returns the directory, or None if ``$PURERL_NO_COMPILATION_CACHE`` is set. See
    :func:`purerl.core.compilation.enable_compilation_cache`."""
    from purerl.core import compilation  # deferred: ``import purerl`` stays free of JAX

    return compilation.enable_compilation_cache(path)
