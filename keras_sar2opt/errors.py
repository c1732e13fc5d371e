"""The one exception type the command line turns into a one-line error."""


class Sar2OptError(Exception):
    """A user-facing error: bad option, bad file, bad data. Its message is one line."""
