"""Helpers for tests and benchmarks that need real infrastructure (never used in production)."""
