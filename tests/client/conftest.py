"""Fixtures of the SDK tests: the stack of tests/client/sdk_stack.py."""

from tests.client.sdk_stack import sdk_stack  # noqa: F401
