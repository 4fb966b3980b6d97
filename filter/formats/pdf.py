"""Text of PDF attachments (pypdf), so a key in a PDF is scanned like one typed in a message.

Bounded: documents over PDF_MAX_BYTES are not parsed, at most PDF_MAX_PAGES pages are read, extraction
stops after PDF_MAX_SECONDS of the thread's CPU time and after PDF_MAX_CHARS characters. A PDF that cannot
be parsed (damaged, encrypted with a password, not a PDF) is only counted as an attachment, like an image:
its text is not scanned. Text the PDF draws as images (scans) is out of scope, as are images themselves.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass

from filter.formats.limits import check_work

PDF_MAX_BYTES = 16 * 1024 * 1024  # one document, decoded
PDF_MAX_PAGES = 500
PDF_MAX_SECONDS = 2.0  # CPU time of the extraction, checked between pages
PDF_MAX_CHARS = 4 * 1024 * 1024

logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed documents are expected input, not our errors


@dataclass(frozen=True, slots=True)
class PdfText:
    text: str
    complete: bool  # False: a bound stopped extraction before the last page


def looks_like_pdf(head: bytes) -> bool:
    return head[:1024].lstrip(b"\x00\t\n\r ").startswith(b"%PDF-")


def pdf_text(data: bytes) -> PdfText | None:
    """The text of every page (pages joined by a blank line), or None when the document cannot be read.

    Between pages the Check's own work budget is honoured too (its deadline and CPU time): running out of it
    refuses the request like any other work limit, it does not let the rest of the PDF through unread."""
    if len(data) > PDF_MAX_BYTES:
        return None
    from pypdf import PdfReader  # imported on first use: most requests carry no PDF

    start = time.thread_time()
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            return None
        count = len(reader.pages)
    except Exception:  # noqa: BLE001 - any failure of a third-party parser on untrusted bytes: not readable
        return None
    pages: list[str] = []
    size = 0
    complete = True
    for i in range(count):
        check_work("reading PDF pages")
        if i >= PDF_MAX_PAGES or size >= PDF_MAX_CHARS or time.thread_time() - start > PDF_MAX_SECONDS:
            complete = False
            break
        try:
            text = reader.pages[i].extract_text() or ""
        except Exception:  # noqa: BLE001 - a damaged page: the others are still read
            text = ""
        pages.append(text)
        size += len(text)
    return PdfText("\n\n".join(pages)[:PDF_MAX_CHARS], complete)
