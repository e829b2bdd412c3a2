"""A web page to segment and caption regions of an uploaded image (Gradio).

``tools/app.py`` serves it: :func:`main` takes its command line.

Upload an image, then drag a box on it, or click it: in "point" mode each click is a region
prompt; in "box" mode two clicks are the opposite corners of a box. "Anything" captions every
region SAM finds by itself.
The page shows the masks with their captions and a table of captions and scores.

The model is loaded once; the image encoder runs once per uploaded image. The server binds to
127.0.0.1 unless ``--host`` says otherwise, refuses uploads over ``--max-file-size`` and images
over ``--max-pixels``; a file that is not an image gets a message in the page.
"""

import argparse
import hashlib
import html
import os
import threading

import gradio as gr
from detectron2.structures import Instances
from detectron2.utils.logger import setup_logger
from PIL import Image

from ..data import ImageReadError
from ..model_zoo import resolve_config
from .predictor import SCAPredictor
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
    """The page's handlers around one shared predictor (loaded once; calls are serialised)."""

    def __init__(self, predictor: SCAPredictor, max_pixels: int):
        self.predictor = predictor
        self.max_pixels = max_pixels
        self.lock = threading.Lock()
        self.current_key: str | None = None

    # ---- handlers: each returns (shown image, status, results table, session state) ----

    def upload(self, path: str | None):
        if not path:
            return None, "", "", {}
        name = os.path.basename(path)
        try:
            with Image.open(path) as im:
                w, h = im.size
        except Exception as e:  # any decoding failure is a message, never a dead page
            msg = f"{name} is not an image that Pillow can read ({type(e).__name__})."
            return None, _error(msg), "", {}
        if w * h > self.max_pixels:
            msg = f"{name} has {w}x{h} pixels, more than the limit of {self.max_pixels:,}."
            return None, _error(msg), "", {}
        with open(path, "rb") as f:
            key = hashlib.sha256(f.read()).hexdigest()
        try:
            with self.lock:
                self.predictor.set_image(path)
                self.current_key = key
                image = self.predictor.image_rgb().copy()
        except (ImageReadError, OSError, ValueError) as e:
            return None, _error(f"{name} could not be read: {e}"), "", {}
        state = {"key": key, "image": image, "boxes": [], "points": [], "corner": None}
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
            state["boxes"].append([min(x0, x), min(y0, y), max(x0, x), max(y0, y)])
        else:
            state["points"].append([x, y])
        return self._prompted(state)

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
        state["boxes"].append(box)
        return self._prompted(state)

    def drag(self, state: dict, text: str):
        """A box dragged on the shown image (its pixels: the drawing may be scaled)."""
        if not state or not text.strip():
            return gr.update(), gr.update(), gr.update(), state
        scale = state.get("scale", 1.0)
        x0, y0, x1, y1 = (float(v) / scale for v in text.split()[:4])
        state["boxes"].append([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)])
        return self._prompted(state)

    def anything(self, state: dict):
        if not state:
            return gr.update(), _error("Upload an image first."), gr.update(), state
        with self.lock:
            self._ensure_image(state)
            regions = self.predictor.anything()
        return self._show(state, regions, f"Anything: {len(regions)} regions.")

    def clear(self, state: dict):
        if not state:
            return gr.update(), "", "", state
        state.update(boxes=[], points=[], corner=None, scale=1.0)
        return state["image"], "Prompts cleared.", "", state

    # ---- helpers ----

    def _prompted(self, state: dict):
        with self.lock:
            self._ensure_image(state)
            parts = []
            if state["boxes"]:
                parts.append(self.predictor.predict(boxes=state["boxes"]))
            if state["points"]:
                parts.append(self.predictor.predict(points=state["points"]))
        regions = Instances.cat(parts) if len(parts) > 1 else parts[0]
        n_box, n_point = len(state["boxes"]), len(state["points"])
        return self._show(state, regions, f"{n_box} box and {n_point} point prompts.")

    def _ensure_image(self, state: dict) -> None:
        """Another session may have encoded its own image since: encode this one again."""
        if self.current_key != state["key"]:
            self.predictor.set_image(state["image"][:, :, ::-1].copy())
            self.current_key = state["key"]

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


def build_app(predictor: SCAPredictor, max_pixels: int) -> gr.Blocks:
    app = SCAApp(predictor, max_pixels)
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
    page = build_app(predictor, args.max_pixels)
    page.queue(default_concurrency_limit=1).launch(
        server_name=args.host,
        server_port=args.port,
        max_file_size=args.max_file_size,
        show_error=True,
        head=DRAG_JS,
    )
