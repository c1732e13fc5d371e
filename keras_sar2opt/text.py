"""Wording shared by messages and reports."""


def counted(count, noun):
    """`count` and `noun`, plural unless the count is one: "1 epoch", "12 pairs"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
