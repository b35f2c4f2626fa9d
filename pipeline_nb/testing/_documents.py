"""Small, valid documents for tests of attachments: a PDF built by hand, page by page."""

from __future__ import annotations


def pdf_bytes(*pages: str) -> bytes:
    """An uncompressed PDF with one page object and one text stream per page (the text as
    written, Latin-1): enough for the API's checks, FakeAnthropic's page numbers and citations.

    >>> pdf_bytes("Introduction.", "The tide is lunar.")[:8]
    b'%PDF-1.4'
    """
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    out = [f"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
           f"2 0 obj << /Type /Pages /Kids [{kids}] /Count {len(pages)} >> endobj\n"]
    for i, text in enumerate(pages):
        out.append(f"{3 + 2 * i} 0 obj << /Type /Page /Parent 2 0 R /Contents {4 + 2 * i} 0 R >> endobj\n"
                   f"{4 + 2 * i} 0 obj << >> stream\nBT ({text}) Tj ET\nendstream endobj\n")
    return ("".join(out) + "%%EOF\n").encode("latin-1")
