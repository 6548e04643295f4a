"""purerl: pure-JAX algorithms as stateless init/act/loss/update functions over pytrees."""

__version__ = "0.1.0"
