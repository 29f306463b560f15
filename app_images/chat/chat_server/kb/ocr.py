"""OCR for images and for PDF pages without a text layer: RapidOCR on onnxruntime.

The `rapidocr` wheel ships its ONNX models (PP-OCRv6 det/rec small, Chinese and English, and
the mobile angle classifier), so nothing is downloaded at run time. The engine is built on
first use, and only ever inside a parse worker (chat_server.kb.parse_worker), whose
address-space limit (PARSE_MAX_MEMORY_BYTES) therefore covers the model too; the API
process never imports it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL.Image import Image

# RapidOCR shrinks an image to this longest side before detection; PDF pages are rendered
# no larger, so a page never costs more than one such bitmap.
MAX_SIDE_PX = 1600
# One onnxruntime thread per worker: PARSE_WORKERS already sets how many parse at once.
_PARAMS = {
    "Global.log_level": "warning",
    "Global.max_side_len": MAX_SIDE_PX,
    "EngineConfig.onnxruntime.intra_op_num_threads": 1,
    "EngineConfig.onnxruntime.inter_op_num_threads": 1,
}
_engine: Any = None
_lock = threading.Lock()


def _get_engine() -> Any:
    global _engine
    with _lock:
        if _engine is None:
            from rapidocr import RapidOCR

            _engine = RapidOCR(params=_PARAMS)
        return _engine


def image_text(image: Image) -> str:
    """The text RapidOCR reads in `image`, one detected line per line, top to bottom."""
    import numpy as np

    rgb = image if image.mode == "RGB" else image.convert("RGB")
    result = _get_engine()(np.asarray(rgb))
    lines = getattr(result, "txts", None) or ()
    return "\n".join(line for line in lines if line.strip())
