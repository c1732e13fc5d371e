"""Benchmarks of keras_sar2opt against PyTorch: a source checkout's developer tools, not installed."""
