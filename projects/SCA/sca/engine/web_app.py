"""A web page to segment and caption regions of an uploaded image (Gradio).

``tools/app.py`` serves it: :func:`main` takes its command line.

Upload an image, then drag a box on it, or click it: in "point" mode each click is a region
prompt; in "box" mode two clicks are the opposite corners of a box. "Anything" captions every
region SAM finds by itself.
The page shows the masks with their captions and a table of captions and scores.

The page calls the service core of the HTTP API (:mod:`sca.engine.service`, ``tools/serve.py``):
one model, requests batched, each image encoded once (its embedding cached by the image's bytes),
prompts checked as the API checks them. The server binds to
127.0.0.1 unless ``--host`` says otherwise, refuses uploads over ``--max-file-size`` and images
over ``--max-pixels``; a file that is not an image gets a message in the page.
"""

import argparse
import html
import os
import re

import gradio as gr
import numpy as np
from detectron2.structures import Instances
from detectron2.utils.logger import setup_logger
from PIL import Image

from ..model_zoo import resolve_config
from .predictor import SCAPredictor
from .service import CaptionService, Prompts, ServiceError, ServiceLimits, parse_prompts
from .visualize import draw_regions

HELP = (
    "Upload an image, then drag a box on it, or click it: in **point** mode each click is a "
    "region prompt; in **box** mode two clicks are the opposite corners of a box. **Anything** "
    "captions every region SAM finds by itself."
)


# Dragging on the image fills the hidden #drag_box textbox with "x1 y1 x2 y2 n" (pixels of the
# shown image) and swallows the click that ends the drag (which would otherwise add a point).
DRAG_JS = """
<script>
(() => {
  let start = null, dragged = false, count = 0;
  const pos = (img, e) => {
    const r = img.getBoundingClientRect();
    return [(e.clientX - r.left) * img.naturalWidth / r.width,
            (e.clientY - r.top) * img.naturalHeight / r.height];
  };
  const target = (e) => e.target.closest && e.target.closest("#canvas img");
  document.addEventListener("dragstart", (e) => { if (target(e)) e.preventDefault(); }, true);
  document.addEventListener("mousedown", (e) => {
    const img = target(e);
    start = img ? pos(img, e) : null;
  }, true);
  document.addEventListener("mouseup", (e) => {
    const img = target(e);
    if (!img || !start) return;
    const end = pos(img, e);
    if (Math.abs(end[0] - start[0]) + Math.abs(end[1] - start[1]) < 6) { start = null; return; }
    dragged = true;
    const box = document.querySelector("#drag_box textarea, #drag_box input");
    // a running count makes every drag a new value (Gradio's change event)
    box.value = [start[0], start[1], end[0], end[1]].map(Math.round).join(" ") + " " + ++count;
    box.dispatchEvent(new Event("input", { bubbles: true }));
    start = null;
  }, true);
  document.addEventListener("click", (e) => {
    if (dragged && target(e)) { e.stopPropagation(); e.preventDefault(); }
    dragged = false;
  }, true);
})();
</script>
"""


class SCAApp:
    """The page's handlers around the service core (:class:`CaptionService`), the code path of
    the HTTP API too: the model is loaded once, requests are batched and image embeddings cached
    by the image's bytes."""

    def __init__(self, service: CaptionService):
        self.service = service

    # ---- handlers: each returns (shown image, status, results table, session state) ----

    def upload(self, path: str | None):
        if not path:
            return None, "", "", {}
        name = os.path.basename(path)
        try:
            with open(path, "rb") as f:
                decoded = self.service.decode(f.read())
        except ServiceError as e:  # any decoding failure is a message, never a dead page
            return None, _error(f"{name} {e.message}."), "", {}
        except OSError as e:
            return None, _error(f"{name} could not be read: {e}"), "", {}
        image = decoded.array
        if self.service.predictor.input_format == "BGR":
            image = np.ascontiguousarray(image[:, :, ::-1])
        state = {"decoded": decoded, "image": image, "boxes": [], "points": [], "corner": None}
        w, h = decoded.width, decoded.height
        return image, f"Loaded {html.escape(name)} ({w}x{h}). {HELP}", "", state

    def click(self, state: dict, mode: str, evt: gr.SelectData):
        if not state:
            return gr.update(), _error("Upload an image first."), gr.update(), state
        x, y = (float(v) / state.get("scale", 1.0) for v in evt.index)
        if mode == "box":
            if state["corner"] is None:
                state["corner"] = [x, y]
                msg = f"Box corner at ({x:.0f}, {y:.0f}): click the opposite corner."
                return gr.update(), msg, gr.update(), state
            (x0, y0), state["corner"] = state["corner"], None
            return self._add(state, "boxes", [min(x0, x), min(y0, y), max(x0, x), max(y0, y)])
        return self._add(state, "points", [x, y])

    def box_from_text(self, state: dict, text: str):
        if not state:
            return gr.update(), _error("Upload an image first."), gr.update(), state
        try:
            box = [float(v) for v in text.replace(",", " ").split()]
            if len(box) != 4:
                raise ValueError
        except ValueError:
            return (
                gr.update(),
                _error(f"Box {text!r}: expected x1, y1, x2, y2."),
                gr.update(),
                state,
            )
        return self._add(state, "boxes", box)

    def drag(self, state: dict, text: str):
        """A box dragged on the shown image (its pixels: the drawing may be scaled)."""
        if not state or not text.strip():
            return gr.update(), gr.update(), gr.update(), state
        scale = state.get("scale", 1.0)
        x0, y0, x1, y1 = (float(v) / scale for v in text.split()[:4])
        return self._add(state, "boxes", [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)])

    def anything(self, state: dict):
        if not state:
            return gr.update(), _error("Upload an image first."), gr.update(), state
        try:
            regions = self.service.anything(state["decoded"]).instances
        except ServiceError as e:
            return gr.update(), _error(f"{e.field} {e.message}"), gr.update(), state
        return self._show(state, regions, f"Anything: {len(regions)} regions.")

    def clear(self, state: dict):
        if not state:
            return gr.update(), "", "", state
        state.update(boxes=[], points=[], corner=None, scale=1.0)
        return state["image"], "Prompts cleared.", "", state

    # ---- helpers ----

    def _add(self, state: dict, kind: str, prompt: list[float]):
        """Check a new prompt as the API does (a message, not an error, when refused), keep it
        and caption all prompts."""
        try:
            self._prompts(state, **{kind: [prompt]})
        except ServiceError as e:
            return (
                gr.update(),
                _error(f"{dict(boxes='box', points='point')[kind]} {e.message}"),
                gr.update(),
                state,
            )
        state[kind].append(prompt)
        return self._prompted(state)

    def _prompts(self, state: dict, boxes=None, points=None) -> Prompts:
        return parse_prompts(boxes, points, None, state["decoded"], self.service.limits)

    def _prompted(self, state: dict):
        # the box and the point prompts go to the service together: one batch
        futures = []
        if state["boxes"]:
            futures.append(
                self.service.submit(state["decoded"], self._prompts(state, boxes=state["boxes"]))
            )
        if state["points"]:
            futures.append(
                self.service.submit(state["decoded"], self._prompts(state, points=state["points"]))
            )
        timeout = self.service.limits.request_timeout_s
        try:
            parts = [f.result(timeout).instances for f in futures]
        except ServiceError as e:
            return gr.update(), _error(f"{e.field} {e.message}"), gr.update(), state
        regions = Instances.cat(parts) if len(parts) > 1 else parts[0]
        n_box, n_point = len(state["boxes"]), len(state["points"])
        return self._show(state, regions, f"{n_box} box and {n_point} point prompts.")

    def _show(self, state: dict, regions: Instances, message: str):
        drawing = draw_regions(state["image"], regions).get_image()
        state["scale"] = drawing.shape[1] / state["image"].shape[1]
        return drawing, message, _table(regions), state


def _error(message: str) -> str:
    return f"**Error:** {html.escape(message)}"


def _table(regions: Instances) -> str:
    rows = [
        "| # | caption | IoU score | caption score | box (x1, y1, x2, y2) |",
        "|---|---|---|---|---|",
    ]
    for i in range(len(regions)):
        box = ", ".join(f"{v:.0f}" for v in regions.pred_boxes.tensor[i].tolist())
        caption = html.escape(regions.pred_captions[i]).replace("|", "\\|")
        rows.append(
            f"| {i} | {caption} | {float(regions.scores[i]):.3f} | "
            f"{float(regions.caption_scores[i]):.3f} | {box} |"
        )
    return "\n".join(rows)


def build_app(service: CaptionService) -> gr.Blocks:
    app = SCAApp(service)
    with gr.Blocks(title="Segment and Caption Anything") as page:
        gr.Markdown("# Segment and Caption Anything\n" + HELP)
        state = gr.State({})
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.UploadButton("Upload an image", file_types=["image"], elem_id="upload")
                mode = gr.Radio(["point", "box"], value="point", label="Click mode", elem_id="mode")
                box_text = gr.Textbox(label="Box (x1, y1, x2, y2)", elem_id="box_text")
                with gr.Row():
                    box_button = gr.Button("Add box", elem_id="add_box")
                    anything_button = gr.Button("Anything", elem_id="anything")
                    clear_button = gr.Button("Clear", elem_id="clear")
                status = gr.Markdown(elem_id="status")
            with gr.Column(scale=2):
                image = gr.Image(
                    label="Click to prompt", interactive=False, type="numpy", elem_id="canvas"
                )
        results = gr.Markdown(elem_id="results")
        drag_box = gr.Textbox(visible="hidden", elem_id="drag_box")
        outputs = [image, status, results, state]
        upload.upload(app.upload, [upload], outputs)
        image.select(app.click, [state, mode], outputs)
        box_button.click(app.box_from_text, [state, box_text], outputs)
        drag_box.change(app.drag, [state, drag_box], outputs)
        anything_button.click(app.anything, [state], outputs)
        clear_button.click(app.clear, [state], outputs)
    return page


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config-file", required=True, metavar="FILE", help="config YAML or model-zoo name"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--max-file-size", default="20mb", help="largest upload, e.g. 20mb")
    parser.add_argument("--max-pixels", type=int, default=50_000_000, help="largest image (w*h)")
    parser.add_argument(
        "--opts", default=[], nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ..."
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Serve the page with command-line arguments ``argv`` (default ``sys.argv[1:]``) until
    interrupted."""
    args = get_parser().parse_args(argv)
    setup_logger(name="sca")
    Image.MAX_IMAGE_PIXELS = args.max_pixels
    predictor = SCAPredictor(resolve_config(args.config_file, opts=args.opts))
    limits = ServiceLimits(
        max_upload_bytes=_bytes(args.max_file_size), max_pixels=args.max_pixels, max_queue=8
    )
    page = build_app(CaptionService(predictor, limits))
    # sessions run at once: the service batches their prompts and serialises the model
    page.queue(default_concurrency_limit=4).launch(
        server_name=args.host,
        server_port=args.port,
        max_file_size=args.max_file_size,
        show_error=True,
        head=DRAG_JS,
    )


def _bytes(size: str) -> int:
    """Gradio's file size text ("20mb", "500 kb", "1gb", "12345") in bytes."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([kmg]?b?)\s*", size.lower())
    if not match:
        raise ValueError(f"--max-file-size {size!r}: expected a size such as 20mb")
    unit = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 2**20, "mb": 2**20, "g": 2**30, "gb": 2**30}
    return int(float(match.group(1)) * unit[match.group(2)])
