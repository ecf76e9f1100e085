"""Helpers shared by several test suites (real processes the tests start and stop)."""
