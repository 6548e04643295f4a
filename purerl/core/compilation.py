"""JAX's persistent compilation cache under purerl's cache directory.

A compiled training run is a large XLA program (tens of seconds to compile on CPU); JAX can store
the compiled executable on disk, keyed by the program, the JAX/XLA version and the device, and load
it on the next run of the same program instead of compiling again. The cached executable is the one
a fresh compile would give (XLA output; a hit skips the compile, it does not change the numbers)::

    import purerl
    purerl.enable_compilation_cache()  # before the first jit; <purerl cache>/jax

The ``purerl`` command line calls it for every command; ``PURERL_NO_COMPILATION_CACHE=1`` (or the
``--no-compilation-cache`` flag) turns it off. Importing the library never changes JAX's global
configuration: library users opt in with the call above.

Caveat from JAX itself: a program that contains host callbacks (``jax.debug.callback``, e.g. a
progress bar inside the scan) is never written to the cache, so the command line runs its training
programs period by period with the progress printed between calls
(:func:`purerl.loops.common.run_periods`). JAX only writes programs that took at least
``jax_persistent_cache_min_compile_time_secs`` (default 1 s) to compile.

The cache is trusted code: do not point it at a directory others can write to (JAX's warning).
"""

from __future__ import annotations

import os

DISABLE_ENV = "PURERL_NO_COMPILATION_CACHE"


def cache_dir() -> str:
    """purerl's cache root: ``$PURERL_CACHE``, else ``$XDG_CACHE_HOME/purerl``, else
    ``~/.cache/purerl`` (named datasets and experts live there too, ``purerl.datasets.registry``)."""
    if os.environ.get("PURERL_CACHE"):
        return os.environ["PURERL_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "purerl")


def disabled_by_env() -> bool:
    """True when ``$PURERL_NO_COMPILATION_CACHE`` is set to anything but ``""``, ``0``, ``false``."""
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def enable_compilation_cache(path: str | None = None) -> str | None:
    """Point JAX's persistent compilation cache at ``path`` (default ``<cache_dir()>/jax``).

    Call it before the first compilation you want cached. If the user already chose a directory
    through JAX (``$JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) and ``path`` is None, that choice
    is kept. Returns the directory in use, or None when ``$PURERL_NO_COMPILATION_CACHE`` disables
    the cache (then nothing is changed).
    """
    if disabled_by_env():
        return None
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc

    current = jax.config.jax_compilation_cache_dir
    if path is None and current:
        return current
    path = os.path.abspath(path or os.path.join(cache_dir(), "jax"))
    os.makedirs(path, exist_ok=True)
    if current != path:
        cc.set_cache_dir(path)
        cc.reset_cache()  # drop a cache already opened at another directory
    return path


def disable_compilation_cache() -> None:
    """Stop reading and writing the persistent compilation cache (for this process)."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc

    jax.config.update("jax_compilation_cache_dir", None)
    cc.reset_cache()
