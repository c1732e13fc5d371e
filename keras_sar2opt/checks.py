"""Option checks shared by every command and library entry point: one wording for each kind of bad value."""

import numbers

from keras_sar2opt.errors import Sar2OptError


def check_positive_int(value, name, *, allow_none=False):
    """Raise Sar2OptError unless `value` is a positive integer (NumPy integers too; True and 1.0 are
    not). `name` is how the message names the option, e.g. "--limit" or "epochs (--epochs)"."""
    if value is None and allow_none:
        return
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise Sar2OptError(f"Expected {name} to be a positive integer, received {value!r}")
