"""RefCOCO, RefCOCO+ and RefCOCOg from the ``refer`` layout: each referred object is one region
whose captions are all of its referring expressions."""

from __future__ import annotations

import pickle
from collections import defaultdict
from collections.abc import Hashable

from .captions import normalize_whitespace
from .coco_json import read_coco_json
from .errors import AnnotationError, require_paths
from .region_records import RegionStats, image_file_name, image_record_to_dict

REFER_LAYOUT = """\
  $DETECTRON2_DATASETS/
    refcoco/   refs(unc).p  refs(google).p  instances.json
    refcoco+/  refs(unc).p  instances.json
    refcocog/  refs(umd).p  refs(google).p  instances.json
    coco/train2014/COCO_train2014_<12-digit id>.jpg"""
REFER_PREPARE = (
    "download refcoco.zip, refcoco+.zip and refcocog.zip (lichengunc/refer) and unzip them "
    "into $DETECTRON2_DATASETS, and COCO train2014 images into $DETECTRON2_DATASETS/coco/ "
    "(see datasets/README.md)"
)


def _utf8(text: str) -> str:
    """Undo the latin-1 decoding of Python 2 byte strings (refer's pickles are Python 2 pickles)."""
    try:
        return text.encode("latin1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


class _DataOnlyUnpickler(pickle.Unpickler):
    """Unpickles lists, dicts, strings and numbers only: any class or function is refused, so
    loading a crafted file cannot execute code."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"it references {module}.{name}")


def read_refs(refs_file: str) -> list[dict]:
    """Load a refer ``refs(<split_by>).p`` pickle (Python 2 or 3) as a list of ref dicts.

    Only plain data is unpickled (refer's files hold nothing else); a file that references a
    class or function, or is truncated, raises :class:`AnnotationError` naming it."""
    try:
        with open(refs_file, "rb") as f:
            refs = _DataOnlyUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise AnnotationError(
            f"{refs_file}: not a refer refs pickle of plain lists, dicts, strings and numbers "
            f"({e}); it is not loaded, as unpickling other objects can execute code"
        ) from None
    if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
        raise AnnotationError(
            f"{refs_file}: expected a pickled list of ref dicts, got {type(refs).__name__}"
        )
    return refs


def _ref_sentences(ref: dict, refs_file: str) -> list[str]:
    sentences = ref.get("sentences")
    if not isinstance(sentences, list) or not sentences:
        raise AnnotationError(
            f"{refs_file}: ref id {ref.get('ref_id')} needs a non-empty 'sentences' list"
        )
    texts = []
    for sentence in sentences:
        text = sentence.get("sent", sentence.get("raw")) if isinstance(sentence, dict) else None
        if not isinstance(text, str):
            raise AnnotationError(
                f"{refs_file}: ref id {ref.get('ref_id')} has a sentence without a 'sent' or "
                f"'raw' string: {sentence!r}"
            )
        texts.append(_utf8(text))
    return texts


def load_refcoco(
    refs_file: str,
    instances_file: str,
    image_root: str,
    split: str,
    name: str | None = None,
) -> list[dict]:
    """Dataset dicts of one split of a refer data set (e.g. ``refs(unc).p``, split "testA").

    Box and image size come from ``instances.json``; the region ``id`` is the ref id.
    """
    source = name or refs_file
    require_paths(source, [refs_file, instances_file, image_root], REFER_LAYOUT, REFER_PREPARE)
    refs = read_refs(refs_file)
    available = sorted({str(r.get("split")) for r in refs})
    refs = [r for r in refs if r.get("split") == split]
    if not refs:
        raise AnnotationError(
            f"{refs_file} has no ref with split {split!r}; its splits: {available}"
        )
    api = read_coco_json(instances_file)
    by_image: dict[int, list[dict]] = defaultdict(list)
    for ref in refs:
        ann_id, image_id = ref.get("ann_id"), ref.get("image_id")
        ann = api.anns.get(ann_id) if isinstance(ann_id, Hashable) else None
        if ann is None or not isinstance(image_id, Hashable) or image_id not in api.imgs:
            raise AnnotationError(
                f"{refs_file}: ref id {ref.get('ref_id')} points to ann_id {ref.get('ann_id')} / "
                f"image_id {ref.get('image_id')}, not found in {instances_file}"
            )
        by_image[ref["image_id"]].append(
            {
                "id": ref.get("ref_id"),
                "bbox": ann.get("bbox"),
                "captions": _ref_sentences(ref, refs_file),
            }
        )
    stats = RegionStats()
    dicts = []
    for image_id in sorted(by_image):
        image = api.imgs[image_id]
        dicts.append(
            image_record_to_dict(
                image,
                by_image[image_id],
                image_file_name(image, image_root, instances_file),
                {},
                "captions",
                normalize_whitespace,
                stats,
                refs_file,
            )
        )
    stats.log(f"{source} ({split})")
    return dicts
