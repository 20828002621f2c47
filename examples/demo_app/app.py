#!/usr/bin/env python
"""SegRet demo: upload an image in the browser, see the segmentation overlay and a legend of the classes found.

    python examples/demo_app/app.py --model outputs/sample                  # a model folder or Hub id (PyTorch)
    python examples/demo_app/app.py --model exports/sample/model.onnx       # an ONNX export (onnxruntime)

then open http://127.0.0.1:7860. The app needs nothing beyond segret-hf (plus onnxruntime for an ONNX export):
the page is plain HTML and JavaScript served by the standard library's HTTP server, so it starts in a second
and runs anywhere Python does. A Hugging Face Space (Docker SDK) runs it unchanged with `--host 0.0.0.0`;
7860 is the port Spaces expose.

HTTP interface: `GET /` is the page; `POST /segment` with an image file as the request body answers JSON
`{"overlay": PNG data URL, "legend": [{"id", "name", "color", "percent"}, ...], "width", "height", "seconds"}`
(legend largest class first), or `{"error": message}` with status 400 for a body that is not an image or one
the model cannot take.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
import threading
import time
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import PIL.Image
import PIL.ImageOps

from segret_hf.inference import SegmentationInferencer
from segret_hf.visualization import classes_by_area, overlay, palette_for_labels

PAGE = Path(__file__).with_name("index.html")
MAX_UPLOAD_BYTES = 32 * 2**20


class Segmenter(Protocol):
    """What the app needs of a model: `SegmentationInferencer` (PyTorch) and `OnnxSegmenter` both provide it."""

    id2label: dict[int, str]

    def predict(self, images: Sequence[Any]) -> list[Any]: ...


def load_segmenter(model: str) -> Segmenter:
    """An ONNX export (a path ending in .onnx) runs on onnxruntime; anything else loads as a PyTorch model."""
    if model.endswith(".onnx"):
        from segret_hf.onnx_inference import OnnxSegmenter  # onnxruntime is an optional dependency

        return OnnxSegmenter.from_pretrained(model)
    return SegmentationInferencer.from_pretrained(model)


def decode_image(data: bytes) -> PIL.Image.Image:
    """The uploaded file as an upright RGB image (phone photos carry their rotation in EXIF)."""
    try:
        image = PIL.Image.open(io.BytesIO(data))
        image.load()
    except (OSError, SyntaxError, ValueError) as error:  # PIL's errors for unreadable or truncated files
        raise ValueError(f"The upload is not an image PIL can read ({error}).") from None
    return PIL.ImageOps.exif_transpose(image).convert("RGB")


def segment(segmenter: Segmenter, image: PIL.Image.Image, alpha: float = 0.5) -> dict[str, Any]:
    """The `/segment` answer for one image: overlay as a PNG data URL, and the legend, largest class first."""
    start = time.perf_counter()
    segmentation = segmenter.predict([image])[0]
    seconds = time.perf_counter() - start
    palette, _ = palette_for_labels(segmenter.id2label)
    picture = overlay(image, segmentation, palette, alpha=alpha)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    legend = [
        {
            "id": class_id,
            "name": segmenter.id2label.get(class_id, str(class_id)),
            "color": "#{:02x}{:02x}{:02x}".format(*palette[class_id]),
            "percent": round(100 * fraction, 1),
        }
        for class_id, fraction in classes_by_area(segmentation)
        if 0 <= class_id < len(palette)
    ]
    return {
        "overlay": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"),
        "legend": legend,
        "width": image.width,
        "height": image.height,
        "seconds": round(seconds, 3),
    }


def make_server(segmenter: Segmenter, host: str = "127.0.0.1", port: int = 7860) -> ThreadingHTTPServer:
    """The app's HTTP server (port 0 picks a free one). Requests are served in threads; inference runs one at a
    time, since the model is not meant to be called concurrently."""
    model_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
            if self.path not in ("/", "/index.html"):
                self._send_json({"error": f"no page {self.path}"}, HTTPStatus.NOT_FOUND)
                return
            self._send(PAGE.read_bytes(), "text/html; charset=utf-8")

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/segment":
                self._send_json({"error": f"no endpoint {self.path}"}, HTTPStatus.NOT_FOUND)
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_UPLOAD_BYTES:
                error = f"images up to {MAX_UPLOAD_BYTES // 2**20} MB"
                self._send_json({"error": error}, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
                return
            try:
                image = decode_image(self.rfile.read(length))
                with model_lock:
                    answer = segment(segmenter, image)
            except ValueError as error:  # not an image, or one the model cannot take (e.g. an export's size range)
                self._send_json({"error": str(error)}, HTTPStatus.BAD_REQUEST)
                return
            self._send_json(answer)

        def _send_json(self, payload: dict[str, Any], status: HTTPStatus = HTTPStatus.OK) -> None:
            self._send(json.dumps(payload).encode("utf-8"), "application/json", status)

        def _send(self, body: bytes, content_type: str, status: HTTPStatus = HTTPStatus.OK) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            print(f"{self.address_string()} {format % args}", file=sys.stderr)

    return ThreadingHTTPServer((host, port), Handler)


def main(argv: list[str] | None = None) -> int:
    """Load the model, then serve until interrupted; exit status 2 when the model cannot be loaded."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Model folder or Hub id, or an exported .onnx file.")
    parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on (0.0.0.0 in a Space).")
    parser.add_argument("--port", type=int, default=7860, help="Port (default 7860, the one Spaces expose).")
    args = parser.parse_args(argv)
    try:
        segmenter = load_segmenter(args.model)
    except (ValueError, OSError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    server = make_server(segmenter, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"SegRet demo: {args.model} ({len(segmenter.id2label)} classes) on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
