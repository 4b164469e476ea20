"""Read stage: scanned files become pages (grey arrays), each decoded once.

PNG and JPEG are single pages; TIFF and PDF yield their pages one at a time,
so a 200-page TIFF never sits in memory whole. Pages larger than
`MAX_PAGE_PIXELS` are downscaled on the way in (a 600 dpi A3 scan has far more
pixels than digits need).
"""

from __future__ import annotations

import dataclasses
import io
from typing import Iterator

import cv2
import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_raw
from PIL import Image, UnidentifiedImageError

__all__ = ["Page", "ReadError", "read_pages", "MAX_PAGE_PIXELS", "PDF_DPI"]

MAX_PAGE_PIXELS = 12_000_000   # ~ letter at 400 dpi
PDF_DPI = 300                  # PDF pages without a single embedded scan are rendered at this


class ReadError(ValueError):
    """A file or page that cannot be decoded."""


@dataclasses.dataclass
class Page:
    source_uri: str
    page: int          # 1-based
    image: np.ndarray  # uint8 grey, dark ink on light paper


def _limit(image: np.ndarray) -> np.ndarray:
    pixels = image.shape[0] * image.shape[1]
    if pixels <= MAX_PAGE_PIXELS:
        return image
    scale = (MAX_PAGE_PIXELS / pixels) ** 0.5
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def _kind(uri: str, data: bytes) -> str:
    head = data[:8]
    if head.startswith(b"\x89PNG"):
        return "png"
    if head.startswith(b"\xff\xd8"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head.startswith(b"%PDF"):
        return "pdf"
    ext = uri.lower().rsplit(".", 1)[-1]
    raise ReadError(f"not a PNG, JPEG, TIFF or PDF file (extension .{ext}, starts with {head[:4]!r})")


def _tiff_pages(uri: str, data: bytes) -> Iterator[Page]:
    try:
        img = Image.open(io.BytesIO(data))
        count = getattr(img, "n_frames", 1)
    except (UnidentifiedImageError, OSError) as exc:
        raise ReadError(f"unreadable TIFF: {exc}") from None
    for i in range(count):
        try:
            img.seek(i)
            yield Page(uri, i + 1, _limit(np.asarray(img.convert("L"))))
        except (OSError, ValueError) as exc:
            yield ReadError(f"page {i + 1}: unreadable TIFF page: {exc}"), i + 1


def _pdf_pages(uri: str, data: bytes) -> Iterator[Page]:
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise ReadError(f"unreadable PDF: {exc}") from None
    try:
        for i in range(len(pdf)):
            try:
                yield Page(uri, i + 1, _limit(_pdf_page_image(pdf[i])))
            except (pdfium.PdfiumError, OSError, ValueError) as exc:
                yield ReadError(f"page {i + 1}: unreadable PDF page: {exc}"), i + 1
    finally:
        pdf.close()


def _pdf_page_image(page) -> np.ndarray:
    """A scanned PDF page is one embedded image: take it as it is (no resampling); render anything else."""
    objects = list(page.get_objects())
    images = [o for o in objects if o.type == pdfium_raw.FPDF_PAGEOBJ_IMAGE]
    if len(images) == 1 and len(objects) == 1:
        bitmap = images[0].get_bitmap(render=False)
        return np.asarray(bitmap.to_pil().convert("L"))
    return np.asarray(page.render(scale=PDF_DPI / 72).to_pil().convert("L"))


def read_pages(uri: str, data: bytes) -> Iterator[Page | tuple[ReadError, int]]:
    """Decodes a file's bytes into pages.

    Yields:
        `Page`s; a page that fails on its own is yielded as `(ReadError, page)` so the
        file's other pages still come through.

    Raises:
        ReadError: the file as a whole cannot be opened (empty, unknown format, corrupt).
    """
    if not data:
        raise ReadError("empty file")
    kind = _kind(uri, data)
    if kind in ("png", "jpeg"):
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise ReadError(f"corrupt {kind.upper()} data")
        yield Page(uri, 1, _limit(image))
    elif kind == "tiff":
        yield from _tiff_pages(uri, data)
    else:
        yield from _pdf_pages(uri, data)
