import os

# Keep test compiles small and deterministic on the 2-core CI machine.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
# In-process CLI runs (tests/test_cli.py) must not turn on JAX's persistent compilation cache: it
# would write to ~/.cache and change the global JAX config of the whole test session. The tests of
# the cache itself (tests/test_compilation.py) run it in subprocesses with their own directories.
os.environ.setdefault("PURERL_NO_COMPILATION_CACHE", "1")
