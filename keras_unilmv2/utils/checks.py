"""Argument checks shared by the preprocessors and `keras_unilmv2.masks`."""

import numbers


def check_int(name, value, minimum, hint=""):
    """Returns `value` as an int, or raises a `ValueError` naming `name`.

    `hint` is appended to what the message says is expected.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
    ):
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}{hint}. "
            f"Received: {name}={value!r}"
        )
    return int(value)
