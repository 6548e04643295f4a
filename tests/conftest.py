import os

# Keep test compiles small and deterministic on the 2-core CI machine. LLVM at -O0 compiles the same
# programs about a third faster (tests/test_contract.py + tests/test_learning_smoke.py: 236 s ->
# 151 s on 2 cores), which is what most tests spend their time on; it rounds differently in the
# last bits, so the bit-level recordings (tests/cpu_family.py) are made under these flags.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false --xla_backend_optimization_level=0"
)
# In-process CLI runs (tests/test_cli.py) must not turn on JAX's persistent compilation cache: it
# would write to ~/.cache and change the global JAX config of the whole test session. The tests of
# the cache itself (tests/test_compilation.py) run it in subprocesses with their own directories.
os.environ.setdefault("PURERL_NO_COMPILATION_CACHE", "1")
