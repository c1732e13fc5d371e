"""The exception types the command line turns into one-line errors."""


class Sar2OptError(Exception):
    """A user-facing error: bad option, bad file, bad data. Its message is one line."""


class UsageError(Sar2OptError):
    """A malformed command line that argparse cannot see (e.g. neither of two required options);
    reported like argparse's own errors, with exit status 2."""
