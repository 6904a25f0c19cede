"""The evaluation corpus of known-content matching: synthetic photographs and their near-copies.

Nothing is downloaded: every image is drawn with numpy and Pillow from a seed, so the corpus is
rebuilt byte for byte by anyone with the same numpy and Pillow versions (the bench records them).
An *original* is a "synthetic photograph": a smooth two-colour gradient under low-frequency
colour noise, a handful of filled shapes (ellipses, rectangles, polygons, some blurred), a
patch of fine noise texture, sometimes a line of text, a mild blur and sensor noise. Sizes vary
between landscape, portrait and square so that letterboxing and cropping act differently.

:data:`TRANSFORMS` maps a case name to a function from one RGB image to its near-copy: JPEG
re-compression at quality 90 → 30, down-scaling to 50 % and 25 %, brightness ±30 %,
grayscale, a semi-transparent watermark (a line of text and a small logo), letterboxing into
16:9 with black bars, a 20 % centre crop, rotations by 5° and 90°, and a horizontal mirror.
``combo`` chains JPEG 70, a 60 % resize and +15 % brightness (the near-duplicate of the tests).

Used by ``bench/groups/matching.py`` (the larger corpus) and by ``tests/safety/test_matching*``
(a few images). ``python -m bench.corpus --out DIR`` writes a sample as PNG files to look at.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

RgbArray = NDArray[np.uint8]
"""An ``(height, width, 3)`` uint8 image."""

SIZES: Final = ((768, 576), (576, 768), (640, 640), (800, 600), (600, 800))
"""(width, height) of the originals, cycled by index."""

_WORDS: Final = (
    "harbour", "station", "meadow", "ticket", "lantern", "orchard", "bridge", "market",
    "window", "river", "summer", "garden", "village", "kitchen", "mountain", "letter",
)  # fmt: skip


def _rng(seed: int, index: int, salt: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, index, salt])


def _smooth_noise(rng: np.random.Generator, w: int, h: int, cells: int) -> NDArray[np.float32]:
    """Low-frequency noise in [0, 1]: a small random grid up-sampled bicubically."""
    small = (rng.random((cells, cells)) * 255).astype(np.uint8)
    big = Image.fromarray(small, "L").resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(big, dtype=np.float32) / 255.0


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    c = rng.integers(0, 256, 3)
    return int(c[0]), int(c[1]), int(c[2])


def synthetic_photo(seed: int, index: int, size: tuple[int, int] | None = None) -> RgbArray:
    """Original number ``index`` of the corpus drawn from ``seed``: deterministic."""
    rng = _rng(seed, index)
    w, h = size if size is not None else SIZES[index % len(SIZES)]
    # Background: a two-colour gradient along a random direction, modulated by colour noise.
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (np.cos(angle) * xx / w + np.sin(angle) * yy / h + 1.0) / 2.0
    c0 = np.array(_colour(rng), np.float32)
    c1 = np.array(_colour(rng), np.float32)
    base = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    for channel in range(3):
        cells = int(rng.integers(3, 9))
        base[..., channel] += (_smooth_noise(rng, w, h, cells) - 0.5) * rng.uniform(40, 120)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")

    draw = ImageDraw.Draw(img, "RGBA")
    for _ in range(int(rng.integers(8, 19))):
        kind = int(rng.integers(0, 3))
        x0, y0 = int(rng.integers(-w // 8, w)), int(rng.integers(-h // 8, h))
        x1 = x0 + int(rng.integers(w // 10, w // 2))
        y1 = y0 + int(rng.integers(h // 10, h // 2))
        fill = (*_colour(rng), int(rng.integers(140, 256)))
        if kind == 0:
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif kind == 1:
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        else:
            n = int(rng.integers(3, 7))
            pts = [(int(rng.integers(x0, x1 + 1)), int(rng.integers(y0, y1 + 1))) for _ in range(n)]
            draw.polygon(pts, fill=fill)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(1.0, 3.0))))
        draw = ImageDraw.Draw(img, "RGBA")
    for _ in range(int(rng.integers(2, 7))):  # strokes: branches, wires, edges
        pts = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(3)]
        draw.line(pts, fill=(*_colour(rng), 255), width=int(rng.integers(2, 9)))

    # A patch of fine texture (foliage, gravel, fabric).
    pw, ph = int(rng.integers(w // 6, w // 2)), int(rng.integers(h // 6, h // 2))
    px, py = int(rng.integers(0, w - pw)), int(rng.integers(0, h - ph))
    arr = np.asarray(img, dtype=np.int16).copy()
    texture = (
        rng.integers(-50, 51, (ph, pw, 1)) * np.array(_colour(rng), np.int16)[None, None] // 255
    )
    arr[py : py + ph, px : px + pw] += texture.astype(np.int16)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")

    if rng.random() < 0.6:
        draw = ImageDraw.Draw(img, "RGBA")
        font = ImageFont.load_default(size=int(rng.integers(h // 16, h // 7)))
        words = " ".join(_WORDS[int(i)] for i in rng.integers(0, len(_WORDS), 2))
        xy = (int(rng.integers(0, w // 2)), int(rng.integers(0, h - h // 6)))
        draw.text(xy, words, font=font, fill=(*_colour(rng), 255))

    img = img.filter(ImageFilter.GaussianBlur(radius=0.6))
    arr = np.asarray(img, dtype=np.int16) + rng.integers(-6, 7, (h, w, 3), dtype=np.int16)
    return np.clip(arr, 0, 255).astype(np.uint8)


def distractor(seed: int, index: int, side: int = 256) -> RgbArray:
    """An unrelated image for the false-match model: small, so thousands are cheap."""
    return synthetic_photo(seed + 1_000_003, index, size=(side, side))


# ----------------------------------------------------------------------------- transforms


def _pil(a: RgbArray) -> Image.Image:
    return Image.fromarray(a, "RGB")


def _arr(img: Image.Image) -> RgbArray:
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def jpeg(a: RgbArray, quality: int) -> RgbArray:
    buf = io.BytesIO()
    _pil(a).save(buf, "JPEG", quality=quality)
    return _arr(Image.open(io.BytesIO(buf.getvalue())))


def resize(a: RgbArray, factor: float) -> RgbArray:
    h, w = a.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return _arr(_pil(a).resize(size, Image.Resampling.LANCZOS))


def brightness(a: RgbArray, factor: float) -> RgbArray:
    return _arr(ImageEnhance.Brightness(_pil(a)).enhance(factor))


def grayscale(a: RgbArray) -> RgbArray:
    return _arr(_pil(a).convert("L"))


def watermark(a: RgbArray) -> RgbArray:
    img = _pil(a).convert("RGBA")
    h, w = a.shape[:2]
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    font = ImageFont.load_default(size=max(8, h // 16))
    draw.text((w // 20, h - h // 8), "(c) overt-eval", font=font, fill=(255, 255, 255, 120))
    draw.ellipse((w - w // 8, h // 24, w - w // 24, h // 24 + w // 12), fill=(255, 255, 255, 90))
    return _arr(Image.alpha_composite(img, layer))


def letterbox(a: RgbArray, aspect: float = 16 / 9) -> RgbArray:
    """Pad with black bars to ``aspect`` (width/height), as video stills and screenshots are."""
    h, w = a.shape[:2]
    if w / h < aspect:
        new_w, new_h = round(h * aspect), h
    else:
        new_w, new_h = w, round(w / aspect) + h // 4  # already wide: bars top and bottom
    out = np.zeros((new_h, new_w, 3), np.uint8)
    y, x = (new_h - h) // 2, (new_w - w) // 2
    out[y : y + h, x : x + w] = a
    return out


def crop(a: RgbArray, keep: float = 0.8) -> RgbArray:
    h, w = a.shape[:2]
    dh, dw = round(h * (1 - keep) / 2), round(w * (1 - keep) / 2)
    return np.ascontiguousarray(a[dh : h - dh, dw : w - dw])


def rotate(a: RgbArray, degrees: float) -> RgbArray:
    if degrees % 90 == 0:
        return np.ascontiguousarray(np.rot90(a, int(degrees // 90)))
    return _arr(_pil(a).rotate(degrees, resample=Image.Resampling.BICUBIC, expand=False))


def flip(a: RgbArray) -> RgbArray:
    return np.ascontiguousarray(a[:, ::-1])


def combo(a: RgbArray) -> RgbArray:
    """Re-compressed, resized and brightened: the near-duplicate the tests send ``t`` times."""
    return brightness(resize(jpeg(a, 70), 0.6), 1.15)


TRANSFORMS: Final[dict[str, Callable[[RgbArray], RgbArray]]] = {
    "jpeg-90": lambda a: jpeg(a, 90),
    "jpeg-70": lambda a: jpeg(a, 70),
    "jpeg-50": lambda a: jpeg(a, 50),
    "jpeg-30": lambda a: jpeg(a, 30),
    "resize-50": lambda a: resize(a, 0.5),
    "resize-25": lambda a: resize(a, 0.25),
    "brightness+30": lambda a: brightness(a, 1.3),
    "brightness-30": lambda a: brightness(a, 0.7),
    "grayscale": grayscale,
    "watermark": watermark,
    "letterbox": letterbox,
    "crop-20": crop,
    "rotate-5": lambda a: rotate(a, 5),
    "rotate-90": lambda a: rotate(a, 90),
    "flip": flip,
    "combo": combo,
}
"""Case name -> near-copy function, in the order the bench reports them."""

PDQ_MISSES: Final = frozenset({"crop-20", "rotate-5", "rotate-90", "flip"})
"""Transformations PDQ is not designed to survive (reported, and left out of "overall")."""


DEFAULT_SEED: Final = 2024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--count", type=int, default=4, help="originals to write")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.count):
        original = synthetic_photo(args.seed, i)
        _pil(original).save(args.out / f"{i:03d}-original.png")
        for name, fn in TRANSFORMS.items():
            _pil(fn(original)).save(args.out / f"{i:03d}-{name}.png")
    print(f"wrote {args.count} originals and their copies to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
