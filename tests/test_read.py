"""The read stage: every format to grey pages, a page at a time; what cannot be read is a clear ReadError."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.reading.read import MAX_PAGE_PIXELS, Page, ReadError, read_pages


def _page(h=110, w=85, value=200):
    page = np.full((h, w), 255, np.uint8)
    cv2.putText(page, "7", (20, 80), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 0, 4)
    page[0, 0] = value
    return page


def _tiff(pages) -> bytes:
    buf = io.BytesIO()
    images = [Image.fromarray(p) for p in pages]
    images[0].save(buf, format="TIFF", save_all=True, append_images=images[1:], compression="tiff_deflate")
    return buf.getvalue()


def _pdf(pages) -> bytes:
    buf = io.BytesIO()
    images = [Image.fromarray(p) for p in pages]
    images[0].save(buf, format="PDF", save_all=True, append_images=images[1:], resolution=72.0)
    return buf.getvalue()


def _pages(uri: str, data: bytes) -> list:
    return list(read_pages(uri, data))


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_single_page_images_read_grey(ext):
    ok, data = cv2.imencode(ext, cv2.cvtColor(_page(), cv2.COLOR_GRAY2BGR))
    [page] = _pages("x" + ext, data.tobytes())
    assert isinstance(page, Page) and page.page == 1 and page.image.shape == (110, 85) and page.image.dtype == np.uint8


def test_multi_page_tiff_and_pdf_read_every_page_in_order():
    pages = [_page(value=v) for v in (10, 20, 30)]
    tiff = _pages("x.tif", _tiff(pages))
    assert [p.page for p in tiff] == [1, 2, 3]
    assert [int(p.image[0, 0]) for p in tiff] == [10, 20, 30]
    pdf = _pages("x.pdf", _pdf(pages))
    assert [p.page for p in pdf] == [1, 2, 3] and all(p.image.ndim == 2 for p in pdf)


def test_a_single_page_tiff_cut_short_is_a_read_error():
    data = _tiff([_page(400, 300)])
    with pytest.raises(ReadError):
        for item in read_pages("cut.tif", data[:len(data) // 2]):
            if not isinstance(item, Page):
                raise item[0]


def test_a_single_page_pdf_that_is_not_a_pdf_inside_is_a_read_error():
    with pytest.raises(ReadError, match="unreadable PDF"):
        _pages("broken.pdf", b"%PDF-1.4\n" + bytes(range(256)) * 4)


@pytest.mark.parametrize("data, message", [
    (b"", "empty file"),
    (b"hello, this is text", "not a PNG, JPEG, TIFF or PDF file"),
    (b"\x89PNG\r\n\x1a\n" + bytes(100), "corrupt PNG"),
])
def test_unreadable_files_say_why(data, message):
    with pytest.raises(ReadError, match=message):
        _pages("x.png", data)


def test_huge_pages_are_downscaled_on_the_way_in():
    side = int((MAX_PAGE_PIXELS * 1.5) ** 0.5)
    ok, data = cv2.imencode(".png", np.full((side, side), 255, np.uint8))
    [page] = _pages("big.png", data.tobytes())
    assert page.image.size <= MAX_PAGE_PIXELS * 1.01


def test_a_bitonal_group4_page_is_read_with_the_soft_edges_of_a_grey_scan():
    bw = np.full((300, 400), 255, np.uint8)
    cv2.putText(bw, "1981", (40, 200), cv2.FONT_HERSHEY_SIMPLEX, 4, 0, 12)
    buf = io.BytesIO()
    Image.fromarray(bw).convert("1").save(buf, "TIFF", compression="group4")
    [page] = list(read_pages("file:///fax.tif", buf.getvalue()))
    levels = np.unique(page.image)
    assert len(levels) > 10 and page.image.min() < 30 and page.image.max() == 255  # edges, not two levels
    grey = cv2.GaussianBlur(bw, (0, 0), 2.0)  # a grey scan is left as it is
    [same] = list(read_pages("file:///grey.png", cv2.imencode(".png", grey)[1].tobytes()))
    assert np.array_equal(same.image, grey)
