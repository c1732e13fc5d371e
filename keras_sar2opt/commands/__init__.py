"""Subcommands of `sar2opt`, each a thin layer over library functions."""
