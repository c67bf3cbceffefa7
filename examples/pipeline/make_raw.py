#!/usr/bin/env python3
"""Write ``raw/<class>/<n>.png``: the first 100 held-out digits (digits_eval.npz) as the
8-bit greyscale images a camera pipeline would hand over (pixels 0-255), for the pipeline
example.  Deterministic: re-running it rewrites the same bytes.

    python examples/pipeline/make_raw.py
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
N = 100


def png(image: np.ndarray) -> bytes:
    """A greyscale 8-bit PNG (filter type 0 on every row)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    height, width = image.shape
    rows = b"".join(b"\x00" + image[y].tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def main() -> None:
    with np.load(HERE.parent / "digits_eval.npz") as data:
        inputs, labels = data["inputs"][:N], data["labels"][:N]
    for i, (x, label) in enumerate(zip(inputs, labels)):
        image = np.round(x.reshape(8, 8) * 255).astype(np.uint8)
        folder = HERE / "raw" / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ("%03d.png" % i)).write_bytes(png(image))


if __name__ == "__main__":
    main()
