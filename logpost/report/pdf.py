"""HTML to PDF through WeasyPrint: the only module that imports it, lazily (it costs ~0.5 s).

The document is self-contained, so the renderer should never need to fetch anything. The URL
fetcher enforces it: ``data:`` URIs and files under the package's template folder (and a
``--template-dir`` the user chose) are served; any other URL (http, file elsewhere, ftp ...) is
refused, whatever a template or a log line manages to put in the HTML.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from logpost.model import InputError

FONT_EPOCH = "1704067200"  # 2024-01-01: the date written into embedded font subsets


class RefusedURL(Exception):
    """A URL outside the package's assets; WeasyPrint logs it and carries on without it."""


def make_fetcher(roots: Sequence[str]) -> Any:
    """A WeasyPrint URL fetcher that serves ``data:`` URIs and files under ``roots`` only."""
    from weasyprint.urls import URLFetcher  # type: ignore[import-untyped]

    allowed = [os.path.realpath(r) for r in roots]

    class AssetFetcher(URLFetcher):  # type: ignore[misc]
        def fetch(self, url: str, headers: Any = None) -> Any:
            scheme = url.split(":", 1)[0].lower() if ":" in url else ""
            if scheme == "data":
                return super().fetch(url, headers)
            if scheme == "file":
                path = os.path.realpath(unquote(urlsplit(url).path))
                if any(path == r or path.startswith(r + os.sep) for r in allowed) and os.path.isfile(path):
                    return super().fetch(url, headers)
            raise RefusedURL(f"logpost fetches no external resource: {url[:200]}")

    return AssetFetcher(allowed_protocols=("data", "file"), allow_redirects=False)


def html_to_pdf(html: str, roots: Sequence[str]) -> bytes:
    """Render ``html`` to PDF bytes.

    Raises:
        InputError: WeasyPrint (or the Pango library it needs) is not installed.
    """
    try:
        import weasyprint  # type: ignore[import-untyped]
    except (ImportError, OSError) as exc:  # OSError: the Pango/HarfBuzz shared libraries are missing
        raise InputError(f"PDF output needs WeasyPrint and Pango (see README, set-up): {exc}") from None
    logging.getLogger("weasyprint").setLevel(logging.ERROR)  # its CSS notices are not the reader's business
    base = "file://" + os.path.realpath(roots[0]) + "/"
    doc = weasyprint.HTML(string=html, base_url=base, url_fetcher=make_fetcher(roots), media_type="print")
    # No creation date and a fixed identifier: the same log gives the same PDF bytes. Font subsets get
    # their modification time from fontTools, which takes SOURCE_DATE_EPOCH (reproducible builds) when set.
    unset = "SOURCE_DATE_EPOCH" not in os.environ
    if unset:
        os.environ["SOURCE_DATE_EPOCH"] = FONT_EPOCH
    try:
        return bytes(doc.write_pdf(uncompressed_pdf=False, pdf_identifier=b"logpost", custom_metadata=False))
    finally:
        if unset:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
