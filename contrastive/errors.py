"""What a user gets when something they asked for cannot be done: one line, no traceback.

`UserError` is a mistake in what was asked (a config field out of range, a workdir in use, a
checkpoint that does not fit the config); `report` runs a command line's body and turns a
UserError (exit status 2) or a failed write or read (disk full, read-only, permission denied:
exit status 1) into one line on stderr naming the field or the path. With debug=True the
traceback is shown as well, for developers.
"""
import errno
import sys


class UserError(Exception):
    """A mistake in what the user asked for; its message names what to change."""


def find_os_error(error: BaseException) -> OSError | None:
    """The OSError behind `error` (itself, or a cause or context it was raised from), if any:
    libraries such as orbax re-raise a failed write from a background thread as their own."""
    found, seen = [], set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno is not None:
            found.append(error)
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    named = [e for e in found if e.filename is not None]  # the one that names a path
    return (named or found or [None])[0]


def describe_os_error(error: OSError) -> str:
    """'<strerror> (errno N, ENAME): <path>'."""
    name = errno.errorcode.get(error.errno, "?")
    paths = " -> ".join(str(p) for p in (error.filename, error.filename2) if p is not None)
    return f"{error.strerror} (errno {error.errno}, {name})" + (f": {paths}" if paths else "")


def _drop_closed_loop_echoes(default_hook):
    """An unraisable-exception hook that drops "Event loop is closed": after a failed write,
    tensorstore's pending callbacks find orbax's event loop closed and raise this once each,
    from C++ threads (dozens of tracebacks that say nothing the one line does not)."""

    def hook(unraisable):
        if not (isinstance(unraisable.exc_value, RuntimeError)
                and str(unraisable.exc_value) == "Event loop is closed"):
            default_hook(unraisable)

    return hook


def report(body, debug: bool = False) -> None:
    """Runs body(); a UserError exits with status 2, an OSError (anywhere in the chain of
    causes) with status 1, each as one line on stderr."""
    if not debug:
        sys.unraisablehook = _drop_closed_loop_echoes(sys.unraisablehook)
    try:
        body()
    except UserError as error:
        if debug:
            raise
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    except Exception as error:  # noqa: BLE001 - only a failed read/write is reported briefly
        os_error = find_os_error(error)
        if os_error is None or debug:
            raise
        print(f"error: {describe_os_error(os_error)}", file=sys.stderr, flush=True)
        sys.exit(1)
