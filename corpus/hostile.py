"""Files that attack a reader: decompression bombs, a giant PDF page, a cut TIFF, links and FIFOs.

Each is small on disk and would cost a naive reader gigabytes, hours or a hang.
`make_hostile_files(DIR)` writes them all; the test suite and `formdigits
bench` feed them to the pipeline beside good scans.
"""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
from PIL import Image

__all__ = ["HOSTILE_FILES", "make_hostile_files"]

# file name -> what it is
HOSTILE_FILES = {
    "bomb-60000.png": "60000 x 60000 1-bit PNG, about 0.5 MB (a 3.6 G pixel page)",
    "bomb-30000.png": "30000 x 30000 grey PNG (900 M pixels)",
    "bomb-g4.tif": "60000 x 60000 Group-4 TIFF header over a few bytes of data",
    "cut-in-half.tif": "a three-page TIFF cut off half way",
    "huge-page.pdf": "a PDF of a few hundred bytes whose page is 14,400 x 14,400 pt",
    "zero.png": "a link to /dev/zero",
    "passwd.png": "a link to /etc/passwd, outside the input folder",
    "fifo.png": "a named pipe no one writes to",
}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_bomb(side: int, bit_depth: int) -> bytes:
    """A real PNG of `side` x `side` blank pixels, compressed row by row (small on disk, huge decoded)."""
    row = b"\x00" + bytes((side * bit_depth + 7) // 8)
    packer = zlib.compressobj(9)
    rows_at_once = 256
    block = row * rows_at_once
    parts = [packer.compress(block) for _ in range(side // rows_at_once)]
    parts += [packer.compress(row * (side % rows_at_once)), packer.flush()]
    header = struct.pack(">IIBBBBB", side, side, bit_depth, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def _tiff_g4_header(side: int) -> bytes:
    """A little-endian TIFF whose one directory claims a `side` x `side` Group-4 image over 16 bytes."""
    entries = [(256, 4, side), (257, 4, side), (258, 3, 1), (259, 3, 4), (262, 3, 0), (273, 4, 0),
               (277, 3, 1), (278, 4, side), (279, 4, 16)]
    ifd_offset = 8
    data_offset = ifd_offset + 2 + 12 * len(entries) + 4
    out = b"II*\x00" + struct.pack("<I", ifd_offset) + struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        value = data_offset if tag == 273 else value
        packed = struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3
                                                       else struct.pack("<I", value))
        out += packed
    return out + struct.pack("<I", 0) + bytes(16)


def _cut_tiff() -> bytes:
    pages = [Image.fromarray(np.full((900, 700), 200 + 10 * i, np.uint8)) for i in range(3)]
    buf = io.BytesIO()
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    data = buf.getvalue()
    return data[:len(data) // 2]


def _giant_pdf(points: int = 14400) -> bytes:
    """A minimal PDF: one page of `points` x `points` pt holding one line."""
    content = b"0 0 m 100 100 l S"
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents 4 0 R >>" % (points, points),
               b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content)]
    out, offsets = b"%PDF-1.4\n", []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (n, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)


def make_hostile_files(directory: str) -> list[str]:
    """Writes every file of `HOSTILE_FILES` into `directory` (links and FIFO where the system has them)."""
    os.makedirs(directory, exist_ok=True)
    contents = {"bomb-60000.png": lambda: _png_bomb(60000, 1), "bomb-30000.png": lambda: _png_bomb(30000, 8),
                "bomb-g4.tif": lambda: _tiff_g4_header(60000), "cut-in-half.tif": _cut_tiff,
                "huge-page.pdf": _giant_pdf}
    written = []
    for name, make in contents.items():
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            with open(path + ".part", "wb") as fh:
                fh.write(make())
            os.replace(path + ".part", path)
        written.append(path)
    for name, target in (("zero.png", "/dev/zero"), ("passwd.png", "/etc/passwd")):
        path = os.path.join(directory, name)
        if os.path.exists(target) and not os.path.lexists(path):
            os.symlink(target, path)
        written.append(path)
    fifo = os.path.join(directory, "fifo.png")
    if hasattr(os, "mkfifo") and not os.path.lexists(fifo):
        os.mkfifo(fifo)
    written.append(fifo)
    return written
