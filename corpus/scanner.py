"""The scanner: what happens to a filled form between the paper and the file.

Rotation, shift, scale and perspective, the odd upside-down page, uneven
light, blur, noise, JPEG artefacts, rubber stamps and printed reference
numbers near fields; then the file formats scanners write (PNG, JPEG,
multi-page TIFF, PDF with each page embedded as a JPEG).
"""

from __future__ import annotations

import os
import time

import cv2
import numpy as np

from pipeline.registration.register import box_through
from pipeline.templates.model import Field, Template

__all__ = ["FORMATS", "EXTENSIONS", "print_clutter", "scribble", "scan", "box_on_scan", "jpeg_roundtrip",
           "write_document", "bitonal", "bitonal_copies"]

FORMATS = ("png", "jpeg", "tiff", "pdf")
EXTENSIONS = {"png": "png", "jpeg": "jpg", "tiff": "tif", "pdf": "pdf"}


_STAMPS = ("PAID", "RECEIVED", "COPY", "VERIFIED")


def print_clutter(page: np.ndarray, template: Template, rng: np.random.Generator, scale: float) -> None:
    """A rubber stamp and printed reference numbers near fields, as forms collect them."""
    f = template.fields[int(rng.integers(len(template.fields)))]
    x, y, w, h = (int(v * scale) for v in f.box)
    if rng.random() < 0.5:
        cv2.putText(page, f"REF {int(rng.integers(1000, 99999))}", (x + w + int(12 * scale), y + int(h * 0.7)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale / 4.17 * 2, 70, max(1, int(0.7 * scale)), cv2.LINE_AA)
    if rng.random() < 0.35:
        text = _STAMPS[int(rng.integers(len(_STAMPS)))]
        size = 0.9 * scale / 4.17 * 2
        stroke = max(1, int(1.5 * scale))
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, size, stroke)
        boxes = [tuple(int(v * scale) for v in other.box) for other in template.fields]
        # Near the field, but not over any field's writing (a stamp over digits makes the truth unreadable).
        for _ in range(20):
            cx = x + int(rng.uniform(-0.5, 1.3) * w)
            cy = y + int(rng.uniform(-1.5, 2.5) * h)
            rect = (cx - 30, cy - th - 30, tw + 60, th + 60)
            inside = 0 <= rect[0] and 0 <= rect[1] and rect[0] + rect[2] < page.shape[1] and rect[1] + rect[3] < page.shape[0]
            if inside and not any(_overlap(rect, b) for b in boxes):
                break
        else:
            return
        layer = np.zeros_like(page)
        cv2.rectangle(layer, (cx - 8, cy - th - 8), (cx + tw + 8, cy + 8), 255, stroke)
        cv2.putText(layer, text, (cx, cy), cv2.FONT_HERSHEY_DUPLEX, size, 255, stroke, cv2.LINE_AA)
        m = cv2.getRotationMatrix2D((cx + tw / 2, cy - th / 2), rng.uniform(-12, 12), 1.0)
        layer = cv2.warpAffine(layer, m, (page.shape[1], page.shape[0]))
        np.minimum(page, (255 - layer.astype(np.float32) * rng.uniform(0.35, 0.6)).astype(np.uint8), out=page)


def scribble(page: np.ndarray, template: Template, rng: np.random.Generator, scale: float) -> None:
    """Handwriting over the print, clear of the fields: initials, a tick, a note in the margin."""
    boxes = [tuple(int(v * scale) for v in f.box) for f in template.fields]
    h, w = page.shape
    for _ in range(int(rng.integers(1, 3))):
        for _ in range(20):
            bw, bh = int(rng.uniform(60, 160) * scale), int(rng.uniform(14, 30) * scale)
            x, y = int(rng.uniform(0.05, 0.95) * w - bw / 2), int(rng.uniform(0.08, 0.92) * h)
            if not any(_overlap((x - 10, y - 10, bw + 20, bh + 20), b) for b in boxes):
                break
        else:
            return
        t = np.linspace(0, 1, 40)
        loops = rng.uniform(3, 7)
        xs = x + bw * t + np.sin(t * loops * 2 * np.pi) * bh * 0.25
        ys = y + bh / 2 + np.cos(t * loops * 2 * np.pi + rng.uniform(0, 3)) * bh * 0.45 * rng.uniform(0.6, 1)
        pts = np.stack([xs, ys], 1).astype(np.int32)
        cv2.polylines(page, [pts], False, int(rng.integers(20, 80)), max(1, int(0.9 * scale)), cv2.LINE_AA)


def _overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _scan_transform(shape, rng: np.random.Generator, upside_down: bool, max_angle: float = 3.0,
                    max_scale: float = 0.03) -> np.ndarray:
    """Homography from the printed page to the scan: rotation, scale, shift, slight perspective."""
    h, w = shape
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    angle = np.deg2rad(rng.uniform(-max_angle, max_angle))
    s = rng.uniform(1 - max_scale, 1 + max_scale)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * s
    centre = np.float32([w / 2, h / 2])
    shift = rng.uniform(-0.015, 0.015, 2) * [w, h]
    dst = (src - centre) @ rot.T + centre + shift + rng.uniform(-0.006, 0.006, (4, 2)) * [w, h]
    if upside_down:
        dst = np.float32([w, h]) - dst
    return cv2.getPerspectiveTransform(src, dst.astype(np.float32))


def scan(page: np.ndarray, rng: np.random.Generator, dpi: int, upside_down: bool, max_angle: float = 3.0,
         max_scale: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """The page (grey, or BGR for a colour scan) as a scanner returns it, and the homography from the page to
    the scan."""
    h, w = page.shape[:2]
    matrix = _scan_transform((h, w), rng, upside_down, max_angle, max_scale)
    lid = int(rng.integers(225, 250))  # the scanner lid shows where the paper does not reach
    scanned = cv2.warpPerspective(page, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=(lid, lid, lid))
    # Paper tone and uneven illumination: a smooth multiplicative field.
    light = cv2.resize(rng.uniform(0.8, 1.0, (4, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    tone = rng.uniform(0.9, 0.98)
    scanned = scanned.astype(np.float32) * (light * tone if page.ndim == 2 else (light * tone)[:, :, None])
    sigma = rng.uniform(0.0, 1.0) * dpi / 300.0
    if sigma > 0.25:
        scanned = cv2.GaussianBlur(scanned, (0, 0), sigma)
    noise = np.empty((h, scanned.size // h), np.float32)  # a colour scan's channels each have their own noise
    cv2.randn(noise, 0.0, float(rng.uniform(2.0, 7.0)))
    scanned = np.clip(scanned + noise.reshape(scanned.shape), 0, 255).astype(np.uint8)
    return scanned, matrix


def box_on_scan(field: Field, scale: float, matrix: np.ndarray) -> list[int]:
    return list(box_through(matrix, tuple(v * scale for v in field.box)))


def jpeg_roundtrip(page: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if page.ndim == 2 else cv2.IMREAD_COLOR)


def write_document(path: str, fmt: str, images: list[np.ndarray], dpi: int, rng: np.random.Generator,
                   bilevel: bool = False) -> None:
    """Writes the scanned pages (grey, or BGR) as a scanner would; `bilevel` pages (0 or 255) as 1-bit images,
    Group 4 in a TIFF, except in a JPEG, which has no such mode."""
    if bilevel and fmt != "jpeg":
        _write_bilevel(path, fmt, images, dpi)
        return
    if fmt == "png":
        cv2.imwrite(path, images[0], [cv2.IMWRITE_PNG_COMPRESSION, 1])
        return
    if fmt == "jpeg":
        cv2.imwrite(path, images[0], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 92))])
        return
    from PIL import Image

    pil = [Image.fromarray(img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)) for img in images]
    tmp = path + ".part"
    if fmt == "tiff":
        pil[0].save(tmp, format="TIFF", save_all=True, append_images=pil[1:], compression="tiff_deflate",
                    dpi=(dpi, dpi))
    else:  # pdf: each scanned page embedded as a JPEG image, as scanners write them
        fixed = time.gmtime(1767225600)  # 2026-01-01: the same seed gives the same bytes
        pil[0].save(tmp, format="PDF", save_all=True, append_images=pil[1:], resolution=float(dpi),
                    quality=int(rng.integers(70, 92)), creationDate=fixed, modDate=fixed)
    os.replace(tmp, path)




def _write_bilevel(path: str, fmt: str, images: list[np.ndarray], dpi: int) -> None:
    from PIL import Image

    pil = [Image.fromarray(img).convert("1") for img in images]
    tmp = path + ".part"
    if fmt == "tiff":
        pil[0].save(tmp, format="TIFF", save_all=True, append_images=pil[1:], compression="group4", dpi=(dpi, dpi))
    elif fmt == "pdf":
        fixed = time.gmtime(1767225600)
        pil[0].save(tmp, format="PDF", save_all=True, append_images=pil[1:], resolution=float(dpi),
                    creationDate=fixed, modDate=fixed)
    else:
        pil[0].save(tmp, format="PNG", dpi=(dpi, dpi))
    os.replace(tmp, path)


def bitonal(grey: np.ndarray, threshold: float = 0.6) -> np.ndarray:
    """A grey scan as a production scanner's 1-bit mode gives it: the paper's level divided out (so lid shadow
    and uneven light do not turn black), then one threshold. Light grey or coloured print can vanish, as it does."""
    paper = cv2.dilate(grey, np.ones((25, 25), np.uint8))  # the paper's level, ink taken out
    flat = grey.astype(np.float32) / np.maximum(paper, 1).astype(np.float32)
    return ((flat > threshold) * 255).astype(np.uint8)


def bitonal_copies(corpus: str, out_dir: str, truth_rows: list[dict]) -> list[dict]:
    """Each single-page PNG or JPEG scan of `corpus` as a Group 4 TIFF in `out_dir`; their truth rows, renamed."""
    from PIL import Image

    os.makedirs(out_dir, exist_ok=True)
    renamed = {}
    for row in truth_rows:
        name = row["source"]
        if name.endswith((".png", ".jpg")) and name not in renamed:
            grey = cv2.imread(os.path.join(corpus, name), cv2.IMREAD_GRAYSCALE)
            renamed[name] = name.rsplit(".", 1)[0] + ".tif"
            Image.fromarray(bitonal(grey)).convert("1").save(os.path.join(out_dir, renamed[name]),
                                                              compression="group4")
    return [{**row, "source": renamed[row["source"]]} for row in truth_rows if row["source"] in renamed]
