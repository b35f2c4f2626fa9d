"""Attachments: real files written in tmp_path (a hand-made PDF, PNGs built with zlib, the
headers of JPEG, GIF and WebP files), kernel objects, the plan-time check of an
``attachments:`` list, and the blocks accepted by FakeAnthropic through the real SDK."""

from __future__ import annotations

import base64
import io
import os
import struct
import sys
import zlib
from pathlib import Path

import anthropic
import pytest

from pipeline_nb._attachments import (
    MAX_IMAGE_BYTES,
    MAX_PDF_BYTES,
    MAX_PDF_PAGES,
    MAX_REQUEST_BYTES,
    AttachmentProblem,
    attachment_from_object,
    attachment_from_path,
    check_request,
    parse_item,
    static_problem,
)
from pipeline_nb.content import Document, Image
from pipeline_nb.testing._fake_anthropic import FakeAnthropic


# -- real bytes --------------------------------------------------------------------------------

def pdf(pages: int = 1, padding: int = 0) -> bytes:
    """A small uncompressed PDF with ``pages`` page objects (and ``padding`` bytes of comment)."""
    kids = " ".join(f"{3 + i} 0 R" for i in range(pages))
    body = [b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n",
            f"2 0 obj << /Type /Pages /Kids [{kids}] /Count {pages} >> endobj\n".encode()]
    body += [f"{3 + i} 0 obj << /Type /Page /Parent 2 0 R >> endobj\n".encode() for i in range(pages)]
    if padding:
        body.append(b"%" + b"x" * padding + b"\n")
    return b"".join(body) + b"%%EOF\n"


def png(width: int = 2, height: int = 2) -> bytes:
    """A valid RGB PNG, red, built by hand: signature, IHDR, IDAT (zlib) and IEND with CRCs."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def jpeg(width: int = 4, height: int = 3) -> bytes:
    """A JPEG's header: SOI, a JFIF APP0 segment, then the SOF0 frame header with the size."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def gif(width: int = 5, height: int = 6) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00;"


def webp(width: int = 7, height: int = 8, chunk: bytes = b"VP8X") -> bytes:
    """A WebP's header in each of its three forms: extended, lossless and lossy."""
    if chunk == b"VP8X":
        data = b"\x00" * 4 + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    elif chunk == b"VP8L":
        data = b"\x2f" + ((width - 1) | (height - 1) << 14).to_bytes(4, "little")
    else:
        data = b"\x00\x00\x00\x9d\x01\x2a" + struct.pack("<HH", width, height)
    return b"RIFF" + struct.pack("<I", 4 + 8 + len(data)) + b"WEBP" + chunk + struct.pack("<I", len(data)) + data


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def problem_of(call, *args, **kwargs) -> AttachmentProblem:
    with pytest.raises(AttachmentProblem) as raised:
        call(*args, **kwargs)
    return raised.value


# -- files -------------------------------------------------------------------------------------

def test_a_pdf_becomes_a_base64_pdf_document_titled_by_its_file_name(tmp_path):
    data = pdf(pages=2)
    doc = attachment_from_path(write(tmp_path, "paper.pdf", data), citations=True, cache="1h")
    assert doc == Document("application/pdf", base64.b64encode(data).decode(), "paper.pdf", True, "1h")
    assert doc.to_api()["source"] == {"type": "base64", "media_type": "application/pdf",
                                      "data": base64.b64encode(data).decode()}


@pytest.mark.parametrize(("name", "data", "media_type"), [
    ("fig.png", png(), "image/png"), ("photo.JPG", jpeg(), "image/jpeg"), ("photo.jpeg", jpeg(), "image/jpeg"),
    ("anim.gif", gif(), "image/gif"), ("pic.webp", webp(), "image/webp"),
])
def test_an_image_file_becomes_an_image_block(tmp_path, name, data, media_type):
    image = attachment_from_path(write(tmp_path, name, data), cache=True)
    assert image == Image(media_type, base64.b64encode(data).decode(), "5m")


@pytest.mark.parametrize("name", ["notes.txt", "README.md", "table.csv", "rows.tsv", "data.json", "log.jsonl",
                                  "conf.yaml", "script.py", "paper.tex", "refs.bib", "page.html", "run.log"])
def test_a_text_like_file_becomes_a_plain_text_document(tmp_path, name):
    text = "Tides: lunar.\nWinds — solar.\n"
    doc = attachment_from_path(write(tmp_path, name, text), title="Almanac", citations=True)
    assert doc == Document("text/plain", text, "Almanac", True)
    assert doc.to_api()["source"] == {"type": "text", "media_type": "text/plain", "data": text}


def test_a_csv_keeps_its_text_and_a_bom_is_dropped(tmp_path):
    doc = attachment_from_path(write(tmp_path, "t.csv", b"\xef\xbb\xbfa,b\n1,2\n"))
    assert (doc.data, doc.title) == ("a,b\n1,2\n", "t.csv")


def test_invalid_utf8_names_the_byte_its_offset_line_and_column(tmp_path):
    problem = problem_of(attachment_from_path, write(tmp_path, "notes.txt", b"first\nsec\xffond\n"))
    assert "invalid UTF-8, byte 0xff at offset 9 (line 2, column 4)" in problem.message
    assert "notes.txt" in problem.message and "UTF-8" in problem.hint


def test_the_offset_of_invalid_utf8_counts_a_bom(tmp_path):
    problem = problem_of(attachment_from_path, write(tmp_path, "n.md", b"\xef\xbb\xbfab\xc3("))
    assert "byte 0xc3 at offset 5 (line 1, column 3)" in problem.message


@pytest.mark.parametrize(("name", "data", "said", "fix"), [
    ("fig.jpg", png(), "its name says a JPEG image but it holds a PNG image", "rename it to .png"),
    ("fig.png", gif(), "its name says a PNG image but it holds a GIF image", "rename it to .gif"),
    ("paper.pdf", png(), "its name says a PDF but it holds a PNG image", "rename it to .png"),
    ("fig.webp", b"RIFF\x00\x00\x00\x00WAVEfmt ", "its name says a WebP image but it holds bytes", "save it again"),
    ("notes.txt", png(), "as text: it holds a PNG image", "rename it to .png"),
])
def test_a_file_whose_bytes_contradict_its_suffix_is_refused(tmp_path, name, data, said, fix):
    problem = problem_of(attachment_from_path, write(tmp_path, name, data))
    assert said in problem.message and name in problem.message
    assert problem.hint.startswith(fix)


def test_a_pdf_that_does_not_start_with_the_pdf_marker_is_refused(tmp_path):
    problem = problem_of(attachment_from_path, write(tmp_path, "paper.pdf", "<html>not a pdf</html>"))
    assert "paper.pdf: not a valid PDF, it does not start with %PDF-" in problem.message
    assert "bytes starting 3c 68 74 6d" in problem.message  # what it holds, by bytes, not quoted


def test_an_unknown_suffix_is_named_with_the_kinds_known(tmp_path):
    problem = problem_of(attachment_from_path, write(tmp_path, "report.docx", b"PK\x03\x04rest"))
    assert "the suffix '.docx' is not a kind of file known" in problem.message
    assert ".pdf, .png, .jpg" in problem.hint and ".csv" in problem.hint


def test_an_unknown_suffix_on_pdf_bytes_suggests_the_right_name(tmp_path):
    problem = problem_of(attachment_from_path, write(tmp_path, "scan", pdf()))
    assert "a name without a suffix is not a kind of file known; its bytes are a PDF: rename it to .pdf" \
        in problem.message


def test_a_missing_file_suggests_a_close_name(tmp_path):
    write(tmp_path, "papers/attention.pdf", pdf())
    problem = problem_of(attachment_from_path, tmp_path / "papers" / "atention.pdf")
    assert problem.message == f"attachment not found: {tmp_path / 'papers' / 'atention.pdf'}"
    assert problem.hint == f"did you mean {str(tmp_path / 'papers' / 'attention.pdf')!r}?"


def test_a_missing_folder_is_said(tmp_path):
    problem = problem_of(attachment_from_path, tmp_path / "nowhere" / "a.pdf")
    assert "does not exist either" in problem.hint


@pytest.mark.timeout(30)  # a FIFO opened for reading would block until a writer comes: guard the hang
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this OS")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.txt")
    problem = problem_of(attachment_from_path, tmp_path / "pipe.txt")
    assert "pipe.txt: it is a named pipe (FIFO), not a regular file" in problem.message


def test_a_directory_is_refused(tmp_path):
    (tmp_path / "papers.pdf").mkdir()
    problem = problem_of(attachment_from_path, tmp_path / "papers.pdf")
    assert "it is a directory, not a regular file" in problem.message and problem.hint == "name a file inside it"


@pytest.mark.parametrize(("name", "size", "limit"), [
    ("huge.pdf", 10**9, f"a PDF may be at most {MAX_PDF_BYTES:,} bytes"),
    ("huge.png", MAX_IMAGE_BYTES + 1, f"so {MAX_IMAGE_BYTES:,} bytes"),
    ("huge.txt", MAX_REQUEST_BYTES + 1, f"request limit of {MAX_REQUEST_BYTES:,} bytes"),
])
def test_an_oversized_sparse_file_is_refused_by_its_size_before_it_is_read(tmp_path, name, size, limit):
    path = tmp_path / name
    with open(path, "wb") as handle:
        handle.truncate(size)  # sparse: no disk used, and reading it would take 1 GB of memory
    problem = problem_of(attachment_from_path, path)
    assert f"{size:,} bytes" in problem.message and limit in problem.message


def test_an_image_over_8000_pixels_on_a_side_is_refused(tmp_path):
    problem = problem_of(attachment_from_path, write(tmp_path, "wide.png", png(9000, 1)))
    assert "9000x1 px, over the API's limit of 8000 px on a side" in problem.message


@pytest.mark.parametrize(("data", "size"), [
    (jpeg(8001, 2), "8001x2"), (gif(3, 8100), "3x8100"), (webp(8200, 1), "8200x1"),
    (webp(1, 9000, b"VP8L"), "1x9000"), (webp(12000, 5, b"VP8 "), "12000x5"),
])
def test_the_size_of_every_image_format_is_read_from_its_header(data, size):
    problem = problem_of(attachment_from_object, data)
    assert f"{size} px" in problem.message


def test_a_pdf_over_100_pages_is_refused(tmp_path):
    assert isinstance(attachment_from_path(write(tmp_path, "ok.pdf", pdf(MAX_PDF_PAGES))), Document)
    problem = problem_of(attachment_from_path, write(tmp_path, "book.pdf", pdf(MAX_PDF_PAGES + 1)))
    assert "101 pages, over the API's limit of 100 PDF pages" in problem.message


def test_an_empty_file_is_refused(tmp_path):
    problem = problem_of(attachment_from_path, write(tmp_path, "empty.md", b""))
    assert "empty.md: it is empty" in problem.message


def test_a_title_or_citations_on_an_image_is_refused(tmp_path):
    path = write(tmp_path, "fig.png", png())
    for options in ({"title": "Figure 1"}, {"citations": True}):
        problem = problem_of(attachment_from_path, path, **options)
        assert "they apply to documents (PDF, text), not to images" in problem.message


def test_a_bad_cache_value_is_refused(tmp_path):
    problem = problem_of(attachment_from_path, write(tmp_path, "a.txt", "x"), cache="2h")
    assert problem.message == "cache must be true, '5m' or '1h', not '2h'"


def test_within_refuses_a_path_that_leaves_the_folder(tmp_path):
    write(tmp_path, "secret.txt", "key")
    inside = tmp_path / "project"
    inside.mkdir()
    problem = problem_of(attachment_from_path, inside / ".." / "secret.txt", within=inside)
    assert "is outside" in problem.message
    assert attachment_from_path(write(inside, "a.txt", "ok"), within=inside).data == "ok"


# -- kernel objects ----------------------------------------------------------------------------

def test_bytes_are_sniffed_as_pdf_or_image():
    assert attachment_from_object(pdf(), title="Doc") == Document(
        "application/pdf", base64.b64encode(pdf()).decode(), "Doc")
    assert attachment_from_object(bytearray(png())) == Image("image/png", base64.b64encode(png()).decode())


def test_bytes_that_are_neither_pdf_nor_image_are_refused_by_their_first_bytes():
    problem = problem_of(attachment_from_object, b"hello world")
    assert problem.message.startswith("cannot attach 11 bytes of bytes starting 68 65 6c 6c 6f")
    assert "attach a str" in problem.hint


def test_a_str_is_a_text_document_and_an_empty_one_is_refused():
    assert attachment_from_object("a,b\n1,2\n", citations=True) == Document("text/plain", "a,b\n1,2\n", None, True)
    assert "it is empty" in problem_of(attachment_from_object, "").message


def test_a_path_object_is_the_file(tmp_path):
    doc = attachment_from_object(write(tmp_path, "n.md", "# hi"))
    assert (doc.media_type, doc.data, doc.title) == ("text/plain", "# hi", "n.md")


def test_a_document_or_image_is_kept_as_it_is():
    image = Image("image/png", "AAAA")
    assert attachment_from_object(image) is image


def test_any_other_object_is_refused_naming_its_type_and_what_is_accepted():
    problem = problem_of(attachment_from_object, {"a": 1})
    assert problem.message == "cannot attach a builtins.dict"
    assert "bytes of a PDF" in problem.hint and "pandas DataFrame" in problem.hint


class _Saves:
    """Stands for a library object: its class's module decides how it is attached."""

    def __init__(self, data: bytes) -> None:
        self.data, self.calls = data, []

    def save(self, buffer: io.BytesIO, **options) -> None:
        self.calls.append(options)
        buffer.write(self.data)

    savefig = save


def test_library_objects_are_recognised_by_module_without_importing_the_library(monkeypatch):
    before = set(sys.modules)
    monkeypatch.setattr(_Saves, "__module__", "PIL.PngImagePlugin")
    image = _Saves(png())
    assert attachment_from_object(image) == Image("image/png", base64.b64encode(png()).decode())
    assert image.calls == [{"format": "PNG"}]
    monkeypatch.setattr(_Saves, "__module__", "matplotlib.figure")
    figure = _Saves(png(3, 3))
    assert attachment_from_object(figure).media_type == "image/png" and figure.calls == [{"format": "png"}]
    assert not {"PIL", "matplotlib", "pandas"} & (set(sys.modules) - before)


def test_a_library_that_fails_to_save_is_a_problem_not_a_traceback(monkeypatch):
    class Broken:
        def save(self, buffer, **options):
            raise OSError("cannot write mode CMYK as PNG")
    monkeypatch.setattr(Broken, "__module__", "PIL.Image")
    problem = problem_of(attachment_from_object, Broken())
    assert problem.message == ("cannot attach the PIL image: saving it as PNG failed: "
                               "OSError: cannot write mode CMYK as PNG")


def test_a_pil_image_is_attached_as_png():
    pil = pytest.importorskip("PIL.Image", reason="PIL is not installed in this venv")
    image = attachment_from_object(pil.new("RGB", (3, 2), "red"))
    assert image.media_type == "image/png" and base64.b64decode(image.data).startswith(b"\x89PNG")


def test_a_matplotlib_figure_and_its_axes_are_attached_as_png():
    pytest.importorskip("matplotlib", reason="matplotlib is not installed in this venv")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots()
    axes.plot([1, 2, 3])
    assert attachment_from_object(figure).media_type == "image/png"
    assert attachment_from_object(axes).media_type == "image/png"
    plt.close(figure)


def test_a_dataframe_is_attached_as_csv_text():
    pd = pytest.importorskip("pandas", reason="pandas is not installed in this venv")
    doc = attachment_from_object(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), title="table")
    assert doc == Document("text/plain", "a,b\n1,x\n2,y\n", "table")


# -- the attachments: list, before the run -----------------------------------------------------

def test_a_list_of_good_static_items_has_no_problem(tmp_path):
    write(tmp_path, "papers/a.pdf", pdf())
    write(tmp_path, "fig.png", png())
    raw = ["papers/a.pdf", {"file": "fig.png", "cache": "5m"}, {"file": "papers/a.pdf", "title": "A",
           "citations": True, "cache": True}, "papers/{{ name }}.pdf", "{{ fig }}"]
    assert static_problem(raw, tmp_path) is None


@pytest.mark.parametrize(("raw", "index", "message", "hint"), [
    (["fig.png", "missing.pdf"], 1, "attachment not found: missing.pdf", "no such file in"),
    (["fig.png", {"file": "fig.png", "titel": "x"}], 1, "unknown attachment key 'titel'", "did you mean 'title'?"),
    ([{"path": "fig.png"}], 0, "unknown attachment key 'path'", "did you mean 'file'?"),
    ([{"title": "x"}], 0, "an attachment mapping needs 'file'", "e.g. {file"),
    ([{"file": "fig.png", "cache": 300}], 0, "cache must be true, '5m' or '1h', not 300", "1h"),
    ([{"file": "a.txt", "citations": "yes please"}], 0, "'citations' must be true or false", "citations: true"),
    ([{"file": "a.txt", "title": 2025}], 0, "'title' must be text, not int 2025", "quote it"),
    (["a.txt", 42], 1, "an attachment must be a path, a mapping with 'file' or one '{{ expression }}', "
                       "not int 42", "e.g. '- paper.pdf'"),
    ([{"file": "fig.png", "title": "Figure"}], 0, "they apply to documents", "drop 'title'"),
    (["notes.doc"], 0, "the suffix '.doc' is not a kind of file known", "known: .pdf"),
    ("fig.png", -1, "attachments must be a list, not string 'fig.png'", "one item per line"),
])
def test_the_first_problem_known_before_the_run_is_returned_with_its_index(tmp_path, raw, index, message, hint):
    write(tmp_path, "fig.png", png())
    write(tmp_path, "a.txt", "text")
    write(tmp_path, "notes.doc", "text")
    found = static_problem(raw, tmp_path)
    assert found is not None
    assert found[0] == index and message in found[1] and hint in (found[2] or "")


def test_templated_items_wait_for_the_run(tmp_path):
    assert static_problem(["missing/{{ name }}.pdf", {"file": "{% if x %}a{% endif %}.pdf"}, "{{ fig }}"],
                          tmp_path) is None


def test_a_single_expression_is_an_object_and_any_other_text_a_path():
    assert parse_item("{{ fig }}").is_file is False
    assert parse_item({"file": "{{ paper }}"}).is_file is True
    assert parse_item("papers/{{ name }}.pdf").is_file is True


def test_static_files_that_together_exceed_the_request_limit_name_the_one_that_goes_over(tmp_path):
    half = MAX_REQUEST_BYTES * 3 // 8 + 1_000  # each fits; two are over once base64-encoded
    write(tmp_path, "a.pdf", pdf(padding=half))
    write(tmp_path, "b.pdf", pdf(padding=half))
    write(tmp_path, "c.txt", "x")
    index, message, _ = static_problem(["c.txt", "a.pdf", "{{ fig }}", "b.pdf"], tmp_path)
    assert index == 3 and f"over the API's request limit of {MAX_REQUEST_BYTES:,} bytes" in message
    assert message.startswith("attachment 4 takes the attachments to")


def test_static_pdfs_that_together_exceed_100_pages_are_refused(tmp_path):
    write(tmp_path, "a.pdf", pdf(60))
    write(tmp_path, "b.pdf", pdf(41))
    index, message, _ = static_problem(["a.pdf", "b.pdf"], tmp_path)
    assert (index, message) == (1, "attachment 2 takes the PDFs to 101 pages, over the API's limit of 100 "
                                   "pages in one request")


def test_more_than_20_images_must_each_stay_within_2000_pixels():
    small = [attachment_from_object(png()) for _ in range(20)]
    check_request([*small, attachment_from_object(png(2500, 1))][:20])
    with pytest.raises(AttachmentProblem) as raised:
        check_request([*small, attachment_from_object(png(2500, 1))])
    assert raised.value.index == 20 and "2500x1 px: with more than 20 images" in raised.value.message


def test_more_than_100_images_are_refused():
    with pytest.raises(AttachmentProblem) as raised:
        check_request([attachment_from_object(png())] * 101)
    assert raised.value.index == 100 and "101 images: the API takes at most 100" in raised.value.message


# -- what the API receives ---------------------------------------------------------------------

def test_the_blocks_are_accepted_by_the_api_and_a_pdf_is_cited_by_page(tmp_path, fake: FakeAnthropic,
                                                                      client: anthropic.Anthropic):
    write(tmp_path, "tides.pdf", pdf(1).replace(b"%%EOF", b"BT (the tide is lunar) Tj ET\n%%EOF"))
    blocks = [attachment_from_path(tmp_path / "tides.pdf", citations=True),
              attachment_from_path(write(tmp_path, "winds.md", "Winds are solar."), citations=True),
              attachment_from_object(png()), attachment_from_object(jpeg()), attachment_from_object(gif()),
              attachment_from_object(webp())]
    fake.reply("It is lunar.", cite=[("lunar", "the tide is lunar")])
    message = client.messages.create(model="claude-sonnet-5-5", max_tokens=100, messages=[
        {"role": "user", "content": [b.to_api() for b in blocks] + [{"type": "text", "text": "Tides?"}]}])
    cited = [c for block in message.content for c in (getattr(block, "citations", None) or [])]
    assert [(c.type, c.document_title, c.start_page_number) for c in cited] == [
        ("page_location", "tides.pdf", 1)]
    request = fake.requests[-1]
    assert [d.media_type for d in request.documents] == ["application/pdf", "text/plain"]
    assert [i.media_type for i in request.images] == ["image/png", "image/jpeg", "image/gif", "image/webp"]
