"""Synthetic handwritten digits, deterministic by seed.

A *writer* is a style drawn once from its own seed: which allograph of each
digit they use, slant, letter width, pen width, how shaky their hand is, and
(for some writers) a handwriting font as the underlying letterforms. Each
*sample* then varies within that style: control-point jitter, rotation,
Simard-style elastic distortion, pen pressure, broken and touching strokes,
scanner blur and noise. Every sample goes through the same
`normalize.mnist_normalize` that the pipeline applies to real crops.

Training and held-out sets draw writers from disjoint seed streams, so the
held-out score measures reading unseen handwriting, not memorised writers.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import os
from concurrent.futures import ProcessPoolExecutor

import cv2
import numpy as np

from corpus.glyphs import ALLOGRAPHS, catmull_rom
from pipeline.segmentation.normalize import EmptyCropError, mnist_normalize

__all__ = [
    "WriterStyle",
    "find_handwriting_fonts",
    "draw_writer",
    "render_digit",
    "render_digit_ink",
    "generate",
    "TRAIN_STREAM",
    "HELDOUT_STREAM",
]

TRAIN_STREAM = 0
HELDOUT_STREAM = 1
CANVAS = 72            # render resolution; MNIST normalisation downsamples later
GLYPH_HEIGHT = 46      # nominal digit height on the canvas
SAMPLES_PER_WRITER = 30

# Handwriting-like fonts from Debian packages installed by `make setup`
# (fonts-dkg-handwriting, fonts-breip, fonts-rufscript, fonts-humor-sans,
# fonts-comic-neue). Missing fonts are simply not used. Outline fonts (such as
# femkeklaver) are left out: nobody writes hollow digits.
FONT_GLOBS = (
    "/usr/share/fonts/truetype/fifthhorseman/dkg*.ttf",
    "/usr/share/fonts/truetype/breip/*.ttf",
    "/usr/share/fonts/truetype/rufscript/*.ttf",
    "/usr/share/fonts/truetype/humor-sans/*.ttf",
    "/usr/share/fonts/opentype/comic-neue/ComicNeue-*.otf",
)
FONT_WRITER_SHARE = 0.25


def _is_italic(path: str) -> bool:
    stem = os.path.splitext(os.path.basename(path))[0]
    return "Italic" in stem or stem.endswith(("It", "BI"))


def find_handwriting_fonts() -> list[str]:
    """Paths of the installed handwriting fonts, sorted (stable across runs).

    Italic cuts are left out: the writer's own slant leans the upright cut, and
    on top of an italic one it made flat, stretched digits nobody writes.
    """
    extra = os.environ.get("FORMDIGITS_FONTS", "")
    found = [p for pattern in FONT_GLOBS for p in glob.glob(pattern) if not _is_italic(p)]
    found += [p for p in extra.split(os.pathsep) if p and os.path.exists(p)]
    return sorted(set(found))


@dataclasses.dataclass(frozen=True)
class WriterStyle:
    """How one person writes digits."""

    allograph: tuple[int, ...]     # preferred allograph per digit
    slant: float                   # horizontal shear; positive leans right
    width: float                   # letter width relative to height
    pen: float                     # pen width relative to glyph height
    shake: float                   # per-sample control-point jitter (unit box)
    habit: tuple[np.ndarray, ...]  # fixed control-point offsets per digit (the writer's habit)
    font: str | None               # font path for font-based writers
    pressure: float                # pen-pressure variation along strokes, 0..1
    darkness: float                # ink darkness 0..1 (pencil to marker)

    def ink(self, digit: int, rng: np.random.Generator) -> np.ndarray:
        """One of this writer's glyphs of `digit` as written on a page (not scanned), ink bright on 0."""
        return render_digit_ink(digit, self, rng, scan=False)


def draw_writer(rng: np.random.Generator, fonts: list[str]) -> WriterStyle:
    """Draws one writer's style."""
    allograph = tuple(int(rng.integers(len(ALLOGRAPHS[d]))) for d in range(10))
    habit = tuple(rng.normal(0.0, rng.uniform(0.0, 0.03), size=(64, 2)) for _ in range(10))
    font = None
    if fonts and rng.random() < FONT_WRITER_SHARE:
        font = fonts[int(rng.integers(len(fonts)))]
    return WriterStyle(
        allograph=allograph,
        slant=float(np.clip(rng.normal(0.12, 0.14), -0.2, 0.45)),
        width=float(rng.uniform(0.5, 0.95)),
        pen=float(np.exp(rng.uniform(np.log(0.055), np.log(0.15)))),
        shake=float(rng.uniform(0.008, 0.03)),
        habit=habit,
        font=font,
        pressure=float(rng.uniform(0.0, 0.45)),
        darkness=float(rng.uniform(0.55, 1.0)),
    )


def _stroke_points(digit: int, writer: WriterStyle, rng: np.random.Generator) -> list[np.ndarray]:
    """Unit-box strokes for one sample, with the writer's habit and this sample's jitter."""
    variants = ALLOGRAPHS[digit]
    choice = writer.allograph[digit] if rng.random() < 0.85 else int(rng.integers(len(variants)))
    habit = writer.habit[digit]
    strokes, k = [], 0
    for stroke in variants[choice]:
        pts = np.asarray(stroke, np.float64)
        pts = pts + habit[k:k + len(pts)] + rng.normal(0.0, writer.shake, size=pts.shape)
        k += len(pts)
        strokes.append(pts)
    # Joined strokes must stay joined after jitter: snap each start to the
    # previous end when they were the same point in the allograph.
    for i in range(1, len(strokes)):
        a, b = variants[choice][i - 1][-1], variants[choice][i][0]
        if a == b:
            strokes[i][0] = strokes[i - 1][-1]
    return strokes


def _to_canvas(pts: np.ndarray, writer: WriterStyle, height: float) -> np.ndarray:
    """Unit box -> canvas pixels: width, slant, centring."""
    x = (pts[:, 0] - 0.5) * writer.width * height
    y = (pts[:, 1] - 0.5) * height
    x = x - writer.slant * y
    return np.stack([x + CANVAS / 2.0, y + CANVAS / 2.0], axis=1)


def _draw_strokes(strokes: list[np.ndarray], writer: WriterStyle, rng: np.random.Generator) -> np.ndarray:
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    height = GLYPH_HEIGHT * rng.uniform(0.85, 1.1)
    base = max(1.0, writer.pen * height * rng.uniform(0.85, 1.15))
    phase = rng.uniform(0, 2 * np.pi)
    for stroke in strokes:
        curve = _to_canvas(catmull_rom(stroke, 10), writer, height)
        fixed = np.round(curve * 16).astype(np.int32)  # 4 fractional bits for sub-pixel lines
        # Pen pressure: thickness varies slowly along the stroke.
        step = 6
        for start in range(0, len(fixed) - 1, step):
            seg = fixed[start:start + step + 1]
            t = base * (1.0 + writer.pressure * np.sin(phase + start * 0.15))
            cv2.polylines(canvas, [seg], False, 255, thickness=max(1, int(round(t))),
                          lineType=cv2.LINE_AA, shift=4)
    return canvas


@functools.lru_cache(maxsize=32)
def _load_font(path: str, size: int):
    from PIL import ImageFont

    return ImageFont.truetype(path, size)


def _draw_font(digit: int, writer: WriterStyle, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image, ImageDraw

    font = _load_font(writer.font, int(GLYPH_HEIGHT * 1.35))
    img = Image.new("L", (CANVAS * 2, CANVAS * 2), 0)
    ImageDraw.Draw(img).text((CANVAS // 2, CANVAS // 3), str(digit), fill=255, font=font)
    arr = np.asarray(img)
    ys, xs = np.nonzero(arr > 64)
    if ys.size == 0:
        raise EmptyCropError(f"font {writer.font} has no glyph for {digit}")
    glyph = arr[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = glyph.shape
    scale = GLYPH_HEIGHT * rng.uniform(0.85, 1.1) / h
    # A font's letterforms already have their width: a writer's habit varies it a little, not by a third.
    stretch = float(np.clip(writer.width / 0.7, 0.85, 1.1))
    glyph = cv2.resize(glyph, (max(1, round(w * scale * stretch)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA)
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    gh, gw = glyph.shape
    gw, gh = min(gw, CANVAS), min(gh, CANVAS)
    y0, x0 = (CANVAS - gh) // 2, (CANVAS - gw) // 2
    canvas[y0:y0 + gh, x0:x0 + gw] = glyph[:gh, :gw]
    # Pen width: fonts come in one weight, people don't.
    target = writer.pen * GLYPH_HEIGHT
    thicker = target > 0.1 * GLYPH_HEIGHT
    # Thinning is capped: eroding a thin font further erases whole strokes.
    k = min(int(round(abs(target - 0.1 * GLYPH_HEIGHT))), 99 if thicker else 1)
    if k >= 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k + 1, k + 1))
        canvas = cv2.dilate(canvas, kernel) if thicker else cv2.erode(canvas, kernel)
    shear = np.float32([[1, -writer.slant, writer.slant * CANVAS / 2], [0, 1, 0]])
    return cv2.warpAffine(canvas, shear, (CANVAS, CANVAS), flags=cv2.INTER_LINEAR)


_GRID_X, _GRID_Y = np.meshgrid(np.arange(CANVAS, dtype=np.float32), np.arange(CANVAS, dtype=np.float32))


def _elastic(img: np.ndarray, rng: np.random.Generator, strength: float, cells: int = 4) -> np.ndarray:
    """Simard et al. (2003) elastic distortion: a smooth random displacement field.

    Simard smooths per-pixel noise with a wide Gaussian; drawing the noise on a
    coarse `cells` x `cells` grid and upsampling it bicubically gives the same
    kind of field for a fraction of the cost.
    """
    if strength <= 0:
        return img
    fields = []
    for _ in range(2):
        coarse = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
        f = cv2.resize(coarse, (CANVAS, CANVAS), interpolation=cv2.INTER_CUBIC)
        f *= strength / (float(f.std()) + 1e-6)
        fields.append(f)
    return cv2.remap(img, _GRID_X + fields[0], _GRID_Y + fields[1], cv2.INTER_LINEAR, borderValue=0)


def _affine(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    angle = rng.normal(0.0, 5.0)
    scale = rng.uniform(0.9, 1.08)
    m = cv2.getRotationMatrix2D((CANVAS / 2, CANVAS / 2), angle, scale)
    m[0, 1] += rng.normal(0.0, 0.06)  # a little extra shear per sample
    m[:, 2] += rng.normal(0.0, 1.5, 2)
    return cv2.warpAffine(img, m, (CANVAS, CANVAS), flags=cv2.INTER_LINEAR, borderValue=0)


def _break_strokes(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dry-pen gaps: a few thin paper-coloured cuts across the strokes."""
    ys, xs = np.nonzero(img > 128)
    if ys.size == 0:
        return img
    out = img.copy()
    for _ in range(int(rng.integers(1, 3))):
        i = int(rng.integers(ys.size))
        angle = rng.uniform(0, np.pi)
        half = GLYPH_HEIGHT * 0.12
        p0 = (int(xs[i] - half * np.cos(angle)), int(ys[i] - half * np.sin(angle)))
        p1 = (int(xs[i] + half * np.cos(angle)), int(ys[i] + half * np.sin(angle)))
        cv2.line(out, p0, p1, 0, thickness=int(rng.integers(1, 3)), lineType=cv2.LINE_AA)
    return out


def _touching_fragment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A short piece of a neighbouring digit or box line touching this one's edge.

    Segmentation leaves such remnants on real forms; the model should read the
    digit regardless.
    """
    ys, xs = np.nonzero(img > 128)
    if ys.size == 0:
        return img
    out = img.copy()
    thickness = max(1, int(round(GLYPH_HEIGHT * 0.07)))
    side = rng.integers(3)
    if side == 0:  # left neighbour's tail
        x = int(xs.min()) + 1
        y = int(rng.uniform(ys.min(), ys.max()))
        cv2.line(out, (x - int(GLYPH_HEIGHT * 0.12), y + int(rng.normal(0, 3))), (x, y), 255, thickness, cv2.LINE_AA)
    elif side == 1:  # right neighbour's tail
        x = int(xs.max()) - 1
        y = int(rng.uniform(ys.min(), ys.max()))
        cv2.line(out, (x, y), (x + int(GLYPH_HEIGHT * 0.12), y + int(rng.normal(0, 3))), 255, thickness, cv2.LINE_AA)
    else:  # a stub of the box line under the digit
        y = int(ys.max()) + 1
        x = int(rng.uniform(xs.min(), xs.max()))
        cv2.line(out, (x - 4, y), (x + 4, y), 255, max(1, thickness // 2), cv2.LINE_AA)
    return out


def _scan(img: np.ndarray, writer: WriterStyle, rng: np.random.Generator) -> np.ndarray:
    """Ink darkness, scanner blur and paper noise, as a scanned crop shows them."""
    out = img.astype(np.float32) * writer.darkness * rng.uniform(0.85, 1.0)
    sigma = rng.uniform(0.0, 1.6)
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    # Noise relative to the ink: a faint pencil stroke is still readable on the scan.
    out += rng.normal(0.0, rng.uniform(0.0, 12.0) * writer.darkness, out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def render_digit_ink(digit: int, writer: WriterStyle, rng: np.random.Generator, scan: bool = True) -> np.ndarray:
    """One handwritten digit on a CANVAS x CANVAS grey image, ink bright, not normalised.

    With `scan=False` the scanner stage (darkness, blur, noise) is left out, for
    callers that write the digit onto a page and scan the whole page; so is the
    stub of a neighbour or box line that stands in for what segmentation leaves
    on a crop (on a page, neighbours and lines are really there).
    """
    if writer.font is not None:
        img = _draw_font(digit, writer, rng)
    else:
        img = _draw_strokes(_stroke_points(digit, writer, rng), writer, rng)
    img = _affine(img, rng)
    img = _elastic(img, rng, strength=rng.uniform(0.0, 0.045) * CANVAS)
    if rng.random() < 0.1:
        img = _break_strokes(img, rng)
    if rng.random() < 0.07 and scan:
        img = _touching_fragment(img, rng)
    return _scan(img, writer, rng) if scan else img


def render_digit(digit: int, writer: WriterStyle, rng: np.random.Generator) -> np.ndarray:
    """One handwritten digit, MNIST-normalised: 28x28 uint8, 0 = paper, 255 = ink."""
    return mnist_normalize(render_digit_ink(digit, writer, rng))


def _writer_block(args) -> tuple[np.ndarray, np.ndarray]:
    seed, stream, writer_id, count, fonts = args
    rng = np.random.default_rng(np.random.SeedSequence([seed, stream, writer_id]))
    writer = draw_writer(rng, fonts)
    labels = (np.arange(count) + writer_id) % 10
    images = np.zeros((count, 28, 28), np.uint8)
    for i, digit in enumerate(labels):
        for _attempt in range(5):
            try:
                images[i] = render_digit(int(digit), writer, rng)
                break
            except EmptyCropError:
                continue  # a sample eaten by distortion; draw again
    return images, labels.astype(np.uint8)


def generate(n: int, seed: int = 0, stream: int = TRAIN_STREAM, workers: int | None = None,
             fonts: list[str] | None = None, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Generates `n` normalised synthetic digits with balanced labels.

    Args:
        n: number of samples.
        seed: base seed; the same seed, stream and n give identical arrays.
        stream: TRAIN_STREAM or HELDOUT_STREAM; writers of different streams
            never coincide.
        workers: processes to use (default: all cores). The result does not
            depend on it.
        fonts: handwriting font paths (default: the installed ones).
        progress: optional callable(done, total) for progress reporting.

    Returns:
        (images uint8 [n, 28, 28], labels uint8 [n]).
    """
    if n <= 0:
        raise ValueError("n must be positive")
    fonts = find_handwriting_fonts() if fonts is None else fonts
    blocks, done = [], 0
    writer_id = 0
    while done < n:
        count = min(SAMPLES_PER_WRITER, n - done)
        blocks.append((seed, stream, writer_id, count, fonts))
        done += count
        writer_id += 1
    workers = workers or os.cpu_count() or 1
    images, labels = np.zeros((n, 28, 28), np.uint8), np.zeros(n, np.uint8)
    pos = 0
    if workers == 1 or len(blocks) < 8:
        results = map(_writer_block, blocks)
        pool = None
    else:
        pool = ProcessPoolExecutor(workers)
        results = pool.map(_writer_block, blocks, chunksize=16)
    try:
        for imgs, labs in results:
            images[pos:pos + len(labs)] = imgs
            labels[pos:pos + len(labs)] = labs
            pos += len(labs)
            if progress is not None:
                progress(pos, n)
    finally:
        if pool is not None:
            pool.shutdown()
    return images, labels
