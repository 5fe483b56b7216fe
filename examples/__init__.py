"""Runnable training examples used by the demo, the docs and the tests."""
