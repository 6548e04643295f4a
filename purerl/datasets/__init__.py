"""Offline datasets and demonstrations: D4RL-compatible schema, file I/O, local generation."""

from purerl.datasets.schema import (
    Dataset,
    DatasetError,
    concatenate,
    normalized_score,
    validate,
)

__all__ = ["Dataset", "DatasetError", "concatenate", "normalized_score", "validate"]
