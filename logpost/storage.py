"""Logs on object storage: any fsspec URL (``s3://``, ``gs://``, ``oss://``, ``hdfs://`` ...) whose driver
is installed, read as a stream. S3 and S3-compatible stores (MinIO, Ceph, SeaweedFS, Aliyun OSS's S3
endpoint) come with ``pip install 'logpost[s3]'``.

This is the one place that knows about URLs. The source opener (``parsers.normalise.open_source``)
asks :func:`open_url` for a readable stream and goes on as with a local file (``.gz`` decompressed on
the fly, never downloaded whole: reads are ranged requests of :data:`READ_BLOCK` bytes); scan
discovery asks :func:`list_objects` for a prefix's objects with their size, modification time and
ETag, which decide whether a run changed.

Credentials and endpoint come the standard way for each driver (for S3: ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_ENDPOINT_URL``, ``AWS_PROFILE`` and
``~/.aws``), or as storage options (``--storage-option key=value``: :func:`parse_options`). They are
never written anywhere: error messages pass through :func:`redact`.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from logpost.model import InputError

READ_BLOCK = 1 << 22  # one ranged GET per 4 MiB read (the parsers' block size)
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SECRET_KEY = re.compile(r"key|secret|token|password|passwd|credential|sas|signature", re.I)
_SECRET_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
               "GOOGLE_APPLICATION_CREDENTIALS", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN",
               "OSS_ACCESS_KEY_SECRET", "OSS_ACCESS_KEY_ID")

_options: dict[str, Any] = {}  # set by configure(): the storage options of this process


def is_url(path: str) -> bool:
    """Whether ``path`` is a URL read through fsspec (``file://`` is a local path)."""
    m = _URL.match(path)
    return m is not None and m.group(1).lower() != "file"


def configure(options: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
    """Set the storage options of this process (passed to every fsspec file system it opens)."""
    new = dict(options)
    if new == _options:
        return  # keep the file systems (and their connections) already made
    _options.clear()
    _options.update(new)
    _filesystems.clear()


def parse_options(pairs: Iterable[str]) -> tuple[tuple[str, Any], ...]:
    """``key=value`` strings (``--storage-option``) as storage options: ``true``/``false`` become
    booleans, integers ints, and a dotted key a nested option (``client_kwargs.region_name=cn-north-1``).

    Raises:
        InputError: a pair without ``=``.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"--storage-option {pair.split('=')[0]!r}: expected KEY=VALUE")
        parsed: Any = value
        if value.lower() in ("true", "false"):
            parsed = value.lower() == "true"
        elif re.fullmatch(r"-?\d+", value):
            parsed = int(value)
        target = out
        *parents, last = key.split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[last] = parsed
    return tuple(sorted(out.items()))


def redact(text: str) -> str:
    """``text`` without any credential this process knows (storage options, the standard variables)."""
    secrets = {str(v) for k, v in _flat(_options) if _SECRET_KEY.search(k) and len(str(v)) >= 4}
    secrets |= {os.environ[k] for k in _SECRET_ENV if len(os.environ.get(k, "")) >= 4}
    for s in sorted(secrets, key=len, reverse=True):
        text = text.replace(s, "***")
    return re.sub(r"(://)[^/@\s]+@", r"\1***@", text)  # user:password@ in a URL


def _flat(options: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in options.items():
        if isinstance(v, Mapping):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


# ------------------------------------------------------------------------------------ file systems


def _filesystem_for(url: str) -> tuple[Any, str]:
    """(fsspec file system, path without the protocol) for ``url``.

    Raises:
        InputError: no fsspec, or no driver for the URL's protocol.
    """
    protocol = _URL.match(url).group(1).lower()  # type: ignore[union-attr]
    return _filesystem(protocol), _strip(url)


def _strip(url: str) -> str:
    return _URL.sub("", url, count=1)


_filesystems: dict[tuple[int, str, str], Any] = {}


def _filesystem(protocol: str) -> Any:
    """One file system per protocol and option set, per process (a forked worker makes its own: a
    driver's event loop thread does not survive a fork)."""
    key = (os.getpid(), protocol, repr(sorted(_options.items())))
    if key not in _filesystems:
        _filesystems[key] = _new_filesystem(protocol)
    return _filesystems[key]


def _new_filesystem(protocol: str) -> Any:
    try:
        import fsspec
    except ImportError:
        raise InputError(f"{protocol}:// needs fsspec and its {protocol} driver (pip install 'logpost[s3]'"
                         " for S3)") from None
    try:
        cls = fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as exc:
        hint = " (pip install 'logpost[s3]')" if protocol in ("s3", "s3a") else ""
        raise InputError(f"{protocol}://: no file system driver installed{hint}: {redact(str(exc))}") from None
    try:
        return cls(**_options)
    except Exception as exc:  # a driver's own validation of its options
        raise InputError(f"{protocol}://: bad storage options: {redact(str(exc))}") from None



def _error(url: str, exc: BaseException, what: str = "cannot read") -> InputError:
    """One line for what went wrong reaching ``url``: missing, denied, or the driver's own words."""
    if isinstance(exc, FileNotFoundError):
        reason = "no such object or bucket"
    elif isinstance(exc, PermissionError):
        reason = "access denied (check the credentials and the bucket's policy)"
    else:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = f"{what} ({detail})"
    return InputError(redact(f"{url}: {reason}"))


# ------------------------------------------------------------------------------------ reading


def open_url(url: str) -> io.BufferedReader:
    """A buffered binary stream of the object at ``url``, read in ranged requests as it is consumed.

    Raises:
        InputError: missing, denied, a prefix rather than an object, unreachable.
    """
    fs, path = _filesystem_for(url)
    try:
        if url.endswith("/") or fs.isdir(path):
            raise InputError(f"{redact(url)}: a prefix (folder), not a log object: `logpost scan` it")
        raw = fs.open(path, "rb", block_size=READ_BLOCK, cache_type="none")
    except InputError:
        raise
    except Exception as exc:  # drivers raise their own types besides OSError
        raise _error(url, exc) from None
    return io.BufferedReader(raw, READ_BLOCK)  # type: ignore[arg-type]


def is_file(path: str) -> bool:
    """Whether ``path`` is a local file or an object that can be read again (a signature's look at a
    log's tail, a report's cited lines)."""
    if not is_url(path):
        return os.path.isfile(path)
    try:
        fs, key = _filesystem_for(path)
        return bool(fs.isfile(key))
    except Exception:  # unreachable now: the caller does without
        return False


def open_binary(path: str) -> io.BufferedReader:
    """A local file or an object as raw bytes (not decompressed), buffered and seekable.

    Raises:
        OSError: it cannot be opened.
    """
    if not is_url(path):
        return open(path, "rb")  # noqa: SIM115 - closed by the caller
    try:
        return open_url(path)
    except InputError as exc:
        raise OSError(str(exc)) from None


@dataclass(frozen=True)
class Object:
    """One object under a prefix: its URL and what tells a changed object (size, mtime, ETag)."""

    url: str
    size: int
    mtime_ns: int
    etag: str


def list_objects(url: str) -> list[Object]:
    """Every object under the prefix ``url`` (or the object itself), sorted by URL.

    Raises:
        InputError: the bucket does not exist, access is denied, the store is unreachable, or nothing
            is there.
    """
    fs, path = _filesystem_for(url)
    protocol = _URL.match(url).group(1)  # type: ignore[union-attr]
    path = path.rstrip("/")
    try:
        found = fs.find(path, detail=True, withdirs=False)
        if not found and not url.endswith("/"):
            info = fs.info(path)
            if info.get("type") == "file":
                found = {path: info}
    except Exception as exc:
        raise _error(url, exc, "cannot list") from None
    if not found:
        raise InputError(redact(f"{url}: no objects under this prefix"))
    return sorted((Object(f"{protocol}://{p.lstrip('/')}" if not p.startswith(f"{protocol}://") else p,
                          int(info.get("size") or 0), _mtime_ns(info), _etag(info))
                   for p, info in found.items() if info.get("type", "file") == "file"), key=lambda o: o.url)


def _mtime_ns(info: Mapping[str, Any]) -> int:
    for key in ("LastModified", "mtime", "last_modified", "updated", "modified", "created"):
        v = info.get(key)
        if isinstance(v, datetime):
            return int(v.timestamp() * 1_000_000) * 1000
        if isinstance(v, int | float):
            return int(v * 1e9) if v < 1e11 else int(v)
        if isinstance(v, str):
            try:
                return int(datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp() * 1_000_000) * 1000
            except ValueError:
                continue
    return 0


def _etag(info: Mapping[str, Any]) -> str:
    for key in ("ETag", "etag", "md5Hash", "generation", "VersionId", "checksum"):
        v = info.get(key)
        if v:
            return str(v).strip('"')
    return ""
