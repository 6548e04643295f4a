import os

# Keep test compiles small and deterministic on the 2-core CI machine.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
