"""Turns an official SCA release's ``config.json`` into this project's Detectron2 config."""

from detectron2.config import CfgNode

from ..modeling.sam_builder import SAM_ENCODER_PRESETS

RELEASE_TASK_NAMES = ["recognition", "caption"]  # the release's task-token order


def _require(section: dict, field: str, expected, where: str) -> None:
    value = section.get(field, expected)
    if value != expected:
        raise ValueError(
            f"{where}: {field}={value!r} is not supported; this project expects {expected!r}"
        )


def _encoder_name(vision: dict) -> str:
    shape = {
        "EMBED_DIM": vision["hidden_size"],
        "DEPTH": vision["num_hidden_layers"],
        "NUM_HEADS": vision["num_attention_heads"],
        "GLOBAL_ATTN_INDEXES": list(vision["global_attn_indexes"]),
    }
    return next((n for n, p in SAM_ENCODER_PRESETS.items() if p == shape), "custom")


def apply_release_config(cfg: CfgNode, config: dict, lm_folder: str, source: str) -> None:
    """Set every architecture key of ``cfg`` from a release ``config.json`` (in place). The LM is
    built from ``lm_folder``'s config alone: its weights come with the converted checkpoint."""
    vision = config["vision_config"]
    decoder = config["mask_caption_decoder_config"]
    prompt = config["prompt_encoder_config"]
    where = f"{source} (config.json)"
    hidden = vision["hidden_size"]
    _require(vision, "mlp_dim", 4 * hidden, f"{where} vision_config")
    for field, expected in (("use_rel_pos", True), ("use_abs_pos", True), ("qkv_bias", True)):
        _require(vision, field, expected, f"{where} vision_config")
    for field, expected in (
        ("num_multimask_outputs", 3),
        ("iou_head_depth", 3),
        ("iou_head_hidden_dim", 256),
        ("attention_downsample_rate", 2),
        ("num_attention_heads", 8),
        ("num_caption_heads", 1),
        ("hidden_size", vision["output_channels"]),
    ):
        _require(decoder, field, expected, f"{where} mask_caption_decoder_config")
    _require(prompt, "hidden_size", vision["output_channels"], f"{where} prompt_encoder_config")
    _require(config, "vl_projector_type", "linear", where)
    _require(config, "use_decoder_only_language_model", True, where)

    sam = cfg.MODEL.SCA.SAM
    sam.ENCODER = _encoder_name(vision)
    if sam.ENCODER == "custom":
        sam.EMBED_DIM = hidden
        sam.DEPTH = vision["num_hidden_layers"]
        sam.NUM_HEADS = vision["num_attention_heads"]
        sam.GLOBAL_ATTN_INDEXES = list(vision["global_attn_indexes"])
    sam.PATCH_SIZE = vision["patch_size"]
    sam.WINDOW_SIZE = vision["window_size"]
    sam.PROMPT_EMBED_DIM = vision["output_channels"]
    sam.DECODER_MLP_DIM = decoder["mlp_dim"]
    sam.DECODER_DEPTH = decoder["num_hidden_layers"]
    sam.DECODER_BLOCK_NORM_EPS = decoder.get("layer_norm_eps", 1e-6)
    sam.CHECKPOINT = ""  # SAM's weights are in the converted checkpoint
    cfg.INPUT.IMAGE_SIZE = vision["image_size"]

    mixer = cfg.MODEL.SCA.MIXER
    mixer.DEPTH = decoder["additional_num_hidden_layers"]
    mixer.NUM_HEADS = decoder["num_attention_heads"]
    mixer.MLP_DIM = decoder["mlp_dim"]
    mixer.NUM_CAPTION_TOKENS = decoder["num_caption_tokens"]
    mixer.BLOCK_NORM_EPS = decoder.get("layer_norm_eps", 1e-6)
    mixer.BOX_POOLED_QUERIES = False

    lm = cfg.MODEL.SCA.LM
    lm.NAME_OR_PATH = lm_folder
    lm.GGUF_FILE = ""
    lm.TOKENIZER = ""
    lm.LOAD_WEIGHTS = False
    lm.NUM_TASK_TOKENS = config["num_task_tokens"]
    lm.TASK_NAMES = list(RELEASE_TASK_NAMES)
    lm.TASK = "caption"
