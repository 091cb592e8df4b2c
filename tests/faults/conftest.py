"""Fault tests reuse the tiny built dataset of the training tests."""

from tests.training.conftest import tiny_dataset  # noqa: F401  (a shared session fixture)
