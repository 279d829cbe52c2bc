"""Text in images (OCR) with RapidOCR on onnxruntime: PP-OCR detection and recognition, offline.

The ONNX models (~31 MB) ship inside the ``rapidocr`` wheel. The text-angle classifier stays off
(``Global.use_cls=False``): with it on, a slightly rotated, blurred photo's second line came out as
garbage, and upright text (the common case) reads right without it. Needs the ``[ocr]`` extra.
The pieces are public so that a benchmark can time the raw runtime::

    from aix_jupyter.backend.models import ocr
    engine = ocr.load()
    result = engine(path)
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from aix_jupyter.backend.catalog import ModelSpec, param
from aix_jupyter.backend.jobs import JobContext
from aix_jupyter.backend.models.engine import Lazy, described, installed, media_path, require
from aix_jupyter.core.parameters import ModelParameters

MODEL_ID = "local/ocr-rapidocr"
MODULES = ("rapidocr", "onnxruntime")
INSTALL_HINT = "pip install 'aix-jupyter[ocr]'"
#: RapidOCR's settings: its bundled models only (other languages would download), no angle classifier
PARAMS: dict[str, Any] = {"Global.use_cls": False, "Global.log_level": "warning"}

#: RapidOCR's call sets options on the engine object before it runs: one call at a time
_engine_lock = threading.Lock()


def _load() -> Any:
    require(MODULES, "the RapidOCR model", INSTALL_HINT)
    from rapidocr import RapidOCR

    return RapidOCR(params=dict(PARAMS))


_engine: Lazy[Any] = Lazy(_load)


def load() -> Any:
    """The shared ``rapidocr.RapidOCR`` engine (loaded on first use; safe to call from any thread)."""
    return _engine.get()


def available() -> bool:
    return installed(*MODULES)


def recognise(path: Path) -> list[dict[str, Any]]:
    """The lines of text in the image at ``path``, top to bottom: ``{"text", "confidence", "box"}``."""
    engine = load()
    from PIL import UnidentifiedImageError
    from rapidocr.utils.load_image import LoadImageError

    try:
        with _engine_lock:
            result = engine(path)  # (a local path: RapidOCR reads it with Pillow, EXIF rotation applied)
    except (LoadImageError, UnidentifiedImageError) as exc:
        raise ValueError(f"parameter 'image': not an image that can be read ({exc})") from None
    if result.txts is None or result.boxes is None or result.scores is None:
        return []
    return [
        {
            "text": str(text),
            "confidence": round(float(score), 4),
            "box": [[round(float(x), 1), round(float(y), 1)] for x, y in box],
        }
        for text, score, box in zip(result.txts, result.scores, result.boxes, strict=True)
    ]


def run_ocr(inputs: dict[str, Any], ctx: JobContext) -> str:
    load()
    path = media_path(inputs.get("image"), "image")
    ctx.check()
    lines = recognise(path)
    ctx.details.update(lines=lines)
    return "\n".join(line["text"] for line in lines)


def ocr_spec() -> ModelSpec:
    description = (
        "Printed text in images, offline: RapidOCR (PP-OCR detection and recognition, ONNX). "
        "Answers the lines of text, top to bottom; details hold each line's box and confidence. "
        "Needs the [ocr] extra."
    )
    return ModelSpec(
        id=MODEL_ID,
        name="RapidOCR",
        function="ocr",
        runner=run_ocr,
        description=described(description, available(), INSTALL_HINT),
        params=ModelParameters(
            [param("image", "image", required=True, description="The image (PNG, JPEG...) to read.")]
        ),
        concurrency=1,  # one recognition at a time (see _engine_lock); others wait in the queue
    )
