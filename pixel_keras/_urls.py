"""urllib's failures to reach a URL, and the reason to report for them.

Standard library only (the serving client and the zoo's downloads use it).
"""

import http.client
import urllib.error

# What `urllib.request.urlopen(...)` and reading its answer raise when the
# server cannot be reached or does not answer properly (HTTPError is a
# URLError).
URL_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)


def url_error_reason(error, timeout=None):
    """What to say about `error`, one of `URL_ERRORS`.

    Args:
        error: the exception.
        timeout: the request's timeout in seconds, if it had one: a timeout
            then reads "no answer within timeout=... s (...)".

    Returns:
        An `HTTPError` itself ("HTTP Error 404: Not Found"), else the
        `URLError`'s reason (e.g. the refused connection) or the error, as
        an object to format with `str`.
    """
    if isinstance(error, urllib.error.HTTPError):
        return error
    reason = getattr(error, "reason", error)
    timed_out = isinstance(reason, TimeoutError) or isinstance(error, TimeoutError)
    if timeout is not None and timed_out:
        return f"no answer within timeout={timeout} s ({reason})"
    return reason
