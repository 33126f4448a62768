"""Fixtures of the model-layer tests (tiny checkpoints come from tests/conftest.py)."""
