"""Renamed public arguments that keep their old name for one release."""

import functools
import warnings


def renamed_argument(old, new):
    """Decorates a function whose keyword argument `old` is now called `new`.

    A call with `old=` still works for one release: it warns with a
    `DeprecationWarning` (pointing at the caller) and passes the value on as
    `new`. Giving both is a `TypeError`.
    """

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(
                        f"{function.__qualname__}() takes `{new}` and no longer "
                        f"`{old}` (its deprecated old name); pass only `{new}`. "
                        f"Received: {new}={kwargs[new]!r}, {old}={kwargs[old]!r}"
                    )
                warnings.warn(
                    f"{function.__qualname__}(): `{old}` is deprecated and will "
                    f"be removed in the next release; pass `{new}` (the same "
                    "values).",
                    DeprecationWarning,
                    stacklevel=2,
                )
                kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return wrapper

    return decorate
