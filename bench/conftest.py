"""pytest-benchmark runs: `pytest bench/ --benchmark-only` (not part of the test suite)."""
