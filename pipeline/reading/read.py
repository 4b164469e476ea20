"""Read stage: scanned files become pages (grey arrays), each decoded once, a page at a time.

PNG and JPEG are single pages; TIFF and PDF yield their pages one at a time,
read from the open file, so a 200-page TIFF never sits in memory whole. What
a file claims about its size is checked before anything is decoded: a page of
more than `max_page_pixels` (its header's width x height; a PDF page's size in
points at `PDF_DPI`) is refused, so a 500-byte "image" of 60000 x 60000 pixels
costs nothing. Pages within the limit but larger than digits need are
downscaled to `MAX_PAGE_PIXELS` on the way in (JPEG decodes at a reduced
scale directly). Only regular files are read: no FIFOs or devices, and no
links that lead out of the input folder.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import stat
from typing import BinaryIO, Iterator

import cv2
import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_raw
from PIL import Image

from pipeline.defaults import DEFAULT_MAX_PAGE_PIXELS
from pipeline.reading.dropout import as_grey, is_colour
from pipeline.rows import clean_message

__all__ = ["Page", "ReadError", "read_pages", "open_scan", "input_root", "shown_uri",
           "MAX_PAGE_PIXELS", "PDF_DPI"]

MAX_PAGE_PIXELS = 12_000_000            # pages are downscaled to this (~ letter at 400 dpi)
MAX_IMAGE_FILE_BYTES = 1 << 30          # a PNG or JPEG is read whole; TIFF and PDF are read as needed
PDF_DPI = 300                           # PDF pages without a single embedded scan are rendered at this
# Page sizes are checked here, from each file's header, against the job's own limit.
Image.MAX_IMAGE_PIXELS = None


class ReadError(ValueError):
    """A file or page that cannot be decoded, or may not be."""


@dataclasses.dataclass
class Page:
    source_uri: str
    page: int          # 1-based
    image: np.ndarray  # uint8, dark ink on light paper: grey (H, W), or BGR (H, W, 3) for a page in colour


def shown_uri(path: str) -> str:
    """Returns a file's name as the tables show it: any name the file system allows, bytes that are not UTF-8 escaped.

    Python hands such names over with lone surrogates (PEP 383), which no UTF-8 coder, Parquet file or
    BigQuery row accepts; `\\xff` is what `ls --quoting-style=escape` would show.
    """
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "backslashreplace")


def input_root(pattern: str) -> str | None:
    """Returns the folder an input glob reads from (its part before the first wildcard); None for non-local input."""
    if "://" in pattern and not pattern.startswith("file://"):
        return None
    path = pattern[len("file://"):] if pattern.startswith("file://") else pattern
    head = re.split(r"[*?\[]", path, maxsplit=1)[0]
    return os.path.realpath(os.path.dirname(head) if head and not head.endswith(os.sep) else head or ".")


def open_scan(path: str, root: str | None) -> BinaryIO:
    """Opens a matched file for reading, if it is one to read.

    Raises:
        ReadError: not a regular file (a FIFO, a device, a folder), or a link
            that leads out of `root`, the input folder.
    """
    if "://" in path and not path.startswith("file://"):
        from apache_beam.io.filesystems import FileSystems  # remote paths only: Beam's file systems are heavy

        return FileSystems.open(path, mime_type="application/octet-stream",
                                compression_type="uncompressed")
    local = path[len("file://"):] if path.startswith("file://") else path
    if root and os.path.islink(local):
        target = os.path.realpath(local)
        if os.path.commonpath([target, root]) != root:
            raise ReadError("a link that leads out of the input folder: not read")
    mode = os.stat(local).st_mode
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else \
            "a folder" if stat.S_ISDIR(mode) else "a socket"
        raise ReadError(f"not a regular file ({kind}): not read")
    return open(local, "rb")


def _kind(head: bytes) -> str:
    if head.startswith(b"\x89PNG"):
        return "png"
    if head.startswith(b"\xff\xd8"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head.startswith(b"%PDF"):
        return "pdf"
    raise ReadError("not a PNG, JPEG, TIFF or PDF file")


def _check_size(width: int, height: int, limit: int, what: str = "page") -> None:
    if width * height > limit:
        raise ReadError(f"{what} is {width} x {height} pixels ({width * height / 1e6:.0f} M), over the "
                        f"{limit / 1e6:.0f} M pixel limit (--max-page-pixels); not decoded")


# A bitonal scan (a fax, a production scanner's 1-bit Group 4 TIFF) has hard 0/255 edges; every later step
# (ink strength, line removal, the MNIST-like crops) expects the soft edges of a grey scan.
BILEVEL_SOFTEN_SIGMA = 1.0  # pixels; on dev seeds 5151 and 5252 made bitonal, 1.0 read best of 0, 0.7, 1.0, 1.4


def _soften_bilevel(image: np.ndarray) -> np.ndarray:
    """A bitonal page given the soft edges of a grey scan (a sub-pixel blur); any other page as it is."""
    if len(np.unique(image[::7, ::7])) > 2:
        return image
    return cv2.GaussianBlur(image, (0, 0), BILEVEL_SOFTEN_SIGMA)


def _as_page(image: np.ndarray) -> np.ndarray:
    """A decoded page as the stages downstream take it: grey unless it holds colour (a dropout-colour form),
    bitonal edges softened, downscaled past MAX_PAGE_PIXELS."""
    if image.ndim == 3 and not is_colour(image):
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 2:
        image = _soften_bilevel(image)
    pixels = image.shape[0] * image.shape[1]
    if pixels <= MAX_PAGE_PIXELS:
        return image
    scale = (MAX_PAGE_PIXELS / pixels) ** 0.5
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


_COLOUR_MODES = ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "P", "PA", "LAB", "HSV")
_REDUCED = {False: {8: cv2.IMREAD_REDUCED_GRAYSCALE_8, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
                    2: cv2.IMREAD_REDUCED_GRAYSCALE_2},
            True: {8: cv2.IMREAD_REDUCED_COLOR_8, 4: cv2.IMREAD_REDUCED_COLOR_4, 2: cv2.IMREAD_REDUCED_COLOR_2}}


def _header_size(kind: str, data: bytes) -> tuple[int, int, bool]:
    """(width, height, whether it is stored in colour) from a PNG or JPEG header, without decoding."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return (*img.size, img.mode in _COLOUR_MODES)
    except Exception:  # noqa: BLE001 - any header the library cannot parse
        raise ReadError(f"corrupt {kind.upper()} header") from None


def _image_page(kind: str, data: bytes, limit: int) -> np.ndarray:
    width, height, colour = _header_size(kind, data)
    _check_size(width, height, limit)
    flags = cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE
    if kind == "jpeg":  # libjpeg decodes at 1/2, 1/4 or 1/8 scale directly: big scans cost less
        for factor in (8, 4, 2):
            if width * height / factor ** 2 >= MAX_PAGE_PIXELS:
                flags = _REDUCED[colour][factor]
                break
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise ReadError(f"corrupt {kind.upper()} data")
    return _as_page(image)


def _tiff_pages(uri: str, fh: BinaryIO, limit: int) -> Iterator:
    try:
        img = Image.open(fh)
    except Exception as exc:  # noqa: BLE001
        raise ReadError(f"unreadable TIFF: {clean_message(exc)}") from None
    number = 0
    while True:
        number += 1
        try:
            if number > 1:
                img.seek(number - 1)
        except EOFError:
            return
        except Exception as exc:  # noqa: BLE001 - a directory past this one is damaged: stop here
            yield ReadError(f"page {number}: unreadable TIFF page: {clean_message(exc)}"), number
            return
        try:
            _check_size(*img.size, limit)
            yield Page(uri, number, _as_page(_pil_pixels(img)))
        except ReadError as exc:
            yield ReadError(f"page {number}: {exc}"), number
        except Exception as exc:  # noqa: BLE001 - truncated strips, bad compression...
            yield ReadError(f"page {number}: unreadable TIFF page: {clean_message(exc)}"), number


def _pdf_pages(uri: str, fh: BinaryIO, limit: int) -> Iterator:
    try:
        pdf = pdfium.PdfDocument(fh)
        count = len(pdf)
    except pdfium.PdfiumError as exc:
        raise ReadError(f"unreadable PDF: {clean_message(exc)}") from None
    try:
        for i in range(count):
            try:
                yield Page(uri, i + 1, _as_page(_pdf_page_image(pdf[i], limit)))
            except ReadError as exc:
                yield ReadError(f"page {i + 1}: {exc}"), i + 1
            except Exception as exc:  # noqa: BLE001
                yield ReadError(f"page {i + 1}: unreadable PDF page: {clean_message(exc)}"), i + 1
    finally:
        pdf.close()


def _pdf_page_image(page, limit: int) -> np.ndarray:
    """A scanned PDF page is one embedded image: take it as it is (no resampling); render anything else."""
    objects = list(page.get_objects())
    images = [o for o in objects if o.type == pdfium_raw.FPDF_PAGEOBJ_IMAGE]
    if len(images) == 1 and len(objects) == 1:
        _check_size(*images[0].get_px_size(), limit, "embedded scan")
        return _pil_pixels(images[0].get_bitmap(render=False).to_pil())
    w_pt, h_pt = page.get_size()
    scale = PDF_DPI / 72
    _check_size(int(w_pt * scale), int(h_pt * scale), limit, f"page ({w_pt:.0f} x {h_pt:.0f} pt at {PDF_DPI} dpi)")
    return _pil_pixels(page.render(scale=scale).to_pil())


def _pil_pixels(img: Image.Image) -> np.ndarray:
    """A decoded PIL image as a page's pixels: grey, or BGR when it is stored in colour (or a palette)."""
    if img.mode in _COLOUR_MODES:
        return cv2.cvtColor(np.asarray(img.convert("RGB")), cv2.COLOR_RGB2BGR)
    return np.asarray(img if img.mode == "L" else img.convert("L"))


def read_pages(uri: str, source: bytes | BinaryIO, max_page_pixels: int = DEFAULT_MAX_PAGE_PIXELS) -> Iterator:
    """Decodes a file into pages.

    Args:
        uri: the file's name, for the pages and messages.
        source: the file's bytes, or the open file (TIFF and PDF pages are then read as needed).
        max_page_pixels: pages larger than this are refused before they are decoded.

    Yields:
        `Page`s; a page that fails on its own is yielded as `(ReadError, page)` so the
        file's other pages still come through.

    Raises:
        ReadError: the file as a whole cannot be opened (empty, unknown format, corrupt, too large).
    """
    fh = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    head = fh.read(8)
    if not head:
        raise ReadError("empty file")
    kind = _kind(head)
    fh.seek(0)
    if kind == "tiff":
        yield from _tiff_pages(uri, fh, max_page_pixels)
    elif kind == "pdf":
        yield from _pdf_pages(uri, fh, max_page_pixels)
    else:
        data = fh.read(MAX_IMAGE_FILE_BYTES + 1)
        if len(data) > MAX_IMAGE_FILE_BYTES:
            raise ReadError(f"{kind.upper()} file over {MAX_IMAGE_FILE_BYTES >> 20} MB: not read")
        yield Page(uri, 1, _image_page(kind, data, max_page_pixels))
