"""Writing results: atomically, so an existing file is replaced only by a complete one; the terminal's colours."""

from __future__ import annotations

import os
import tempfile

from logpost.model import InputError, Severity

# click.style colours of the terminal outputs (analyze and check)
SEVERITY_COLOUR = {Severity.CRITICAL: "red", Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
VERDICT_COLOUR = {"failed": "red", "degraded": "yellow", "healthy": "green", "unknown": "white"}


def write_atomic(path: str, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Raises:
        InputError: the folder does not exist or is not writable.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"{path}: folder {folder} does not exist")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        fd, tmp = tempfile.mkstemp(prefix=".logpost-", dir=folder)
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        os.unlink(tmp)
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        os.unlink(tmp)
        raise
