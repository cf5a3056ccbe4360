"""Argument checks shared by the preprocessors."""

import numbers


def check_int(name, value, minimum):
    """Returns `value` as an int, or raises a `ValueError` naming `name`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
    ):
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    return int(value)
