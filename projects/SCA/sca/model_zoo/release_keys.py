"""The key mapping from the official SCA release (Hugging Face SAM naming) to this project's model.

``RELEASE_KEY_RULES`` is the one table of the mapping: the converter applies it and
``docs/MODEL_ZOO.md`` prints it (a test keeps the two equal). Each row maps a key prefix of the
release to a key prefix of this project's model (the part after the prefix is kept); ``{i}`` and
``{k}`` stand for layer numbers and are carried over. The first matching row wins.
"""

import re

import torch

_SAM_TRANSFORMER_ROWS = [
    ("layers.{i}.layer_norm{k}.", "layers.{i}.norm{k}."),
    ("layers.{i}.self_attn.", "layers.{i}.self_attn."),
    ("layers.{i}.cross_attn_token_to_image.", "layers.{i}.cross_attn_token_to_image."),
    ("layers.{i}.cross_attn_image_to_token.", "layers.{i}.cross_attn_image_to_token."),
    ("layers.{i}.mlp.", "layers.{i}.mlp."),
    ("final_attn_token_to_image.", "final_attn_token_to_image."),
    ("layer_norm_final_attn.", "norm_final_attn."),
]
# Hugging Face's SamFeedForward (proj_in, layers.0, proj_out) is segment_anything's 3-layer MLP.
_SAM_MLP3_ROWS = [("proj_in.", "layers.0."), ("layers.0.", "layers.1."), ("proj_out.", "layers.2.")]

RELEASE_KEY_RULES: list[tuple[str, str]] = [
    # SAM image encoder -> Detectron2 backbone around segment_anything's ImageEncoderViT
    ("vision_encoder.patch_embed.projection.", "backbone.image_encoder.patch_embed.proj."),
    ("vision_encoder.pos_embed", "backbone.image_encoder.pos_embed"),
    ("vision_encoder.layers.{i}.layer_norm{k}.", "backbone.image_encoder.blocks.{i}.norm{k}."),
    ("vision_encoder.layers.{i}.attn.", "backbone.image_encoder.blocks.{i}.attn."),
    ("vision_encoder.layers.{i}.mlp.", "backbone.image_encoder.blocks.{i}.mlp."),
    ("vision_encoder.neck.conv1.", "backbone.image_encoder.neck.0."),
    ("vision_encoder.neck.layer_norm1.", "backbone.image_encoder.neck.1."),
    ("vision_encoder.neck.conv2.", "backbone.image_encoder.neck.2."),
    ("vision_encoder.neck.layer_norm2.", "backbone.image_encoder.neck.3."),
    # the random Fourier matrix shared by SAM's image and prompt sides: stored once, one place here
    (
        "shared_image_embedding.positional_embedding",
        "roi_heads.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
    ),
    (
        "prompt_encoder.shared_embedding.positional_embedding",
        "roi_heads.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
    ),
    # SAM prompt encoder
    ("prompt_encoder.point_embed.{i}.", "roi_heads.prompt_encoder.point_embeddings.{i}."),
    ("prompt_encoder.not_a_point_embed.", "roi_heads.prompt_encoder.not_a_point_embed."),
    ("prompt_encoder.no_mask_embed.", "roi_heads.prompt_encoder.no_mask_embed."),
    ("prompt_encoder.mask_embed.conv1.", "roi_heads.prompt_encoder.mask_downscaling.0."),
    ("prompt_encoder.mask_embed.layer_norm1.", "roi_heads.prompt_encoder.mask_downscaling.1."),
    ("prompt_encoder.mask_embed.conv2.", "roi_heads.prompt_encoder.mask_downscaling.3."),
    ("prompt_encoder.mask_embed.layer_norm2.", "roi_heads.prompt_encoder.mask_downscaling.4."),
    ("prompt_encoder.mask_embed.conv3.", "roi_heads.prompt_encoder.mask_downscaling.6."),
    # SAM mask decoder
    ("mask_decoder.iou_token.", "roi_heads.mask_decoder.iou_token."),
    ("mask_decoder.mask_tokens.", "roi_heads.mask_decoder.mask_tokens."),
    ("mask_decoder.upscale_conv1.", "roi_heads.mask_decoder.output_upscaling.0."),
    ("mask_decoder.upscale_layer_norm.", "roi_heads.mask_decoder.output_upscaling.1."),
    ("mask_decoder.upscale_conv2.", "roi_heads.mask_decoder.output_upscaling.3."),
    *[
        (
            f"mask_decoder.output_hypernetworks_mlps.{{i}}.{a}",
            f"roi_heads.mask_decoder.output_hypernetworks_mlps.{{i}}.{b}",
        )
        for a, b in _SAM_MLP3_ROWS
    ],
    *[
        (f"mask_decoder.iou_prediction_head.{a}", f"roi_heads.mask_decoder.iou_prediction_head.{b}")
        for a, b in _SAM_MLP3_ROWS
    ],
    *[
        (f"mask_decoder.transformer.{a}", f"roi_heads.mask_decoder.transformer.{b}")
        for a, b in _SAM_TRANSFORMER_ROWS
    ],
    # SCA's text feature mixer: caption tokens and the additional two-way transformer
    ("mask_decoder.caption_tokens.", "roi_heads.mixer.caption_tokens."),
    *[
        (f"mask_decoder.additional_transformer.{a}", f"roi_heads.mixer.transformer.{b}")
        for a, b in _SAM_TRANSFORMER_ROWS
    ],
    # projection, task tokens (all tasks, in the release's order) and the LM, names unchanged
    ("language_project.", "roi_heads.captioner.language_project."),
    ("task_tokens.", "roi_heads.captioner.task_tokens."),
    ("language_model.", "roi_heads.captioner.lm."),
]


def _rule_regex(prefix: str) -> re.Pattern:
    pattern = re.escape(prefix).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{k\}", r"(?P<k>\d+)")
    return re.compile(pattern)


_COMPILED = [(_rule_regex(src), dst) for src, dst in RELEASE_KEY_RULES]


def release_key_to_sca(key: str) -> str | None:
    """This project's name for a release tensor, or None when no row of the table matches."""
    for regex, dst in _COMPILED:
        match = regex.match(key)
        if match:
            return dst.format(**match.groupdict()) + key[match.end() :]
    return None


def convert_release_state_dict(
    release: dict[str, torch.Tensor], source: str = "release"
) -> dict[str, torch.Tensor]:
    """Rename every release tensor; a tensor that no row maps, or two release tensors with
    different values landing on one key, is an error that names the keys and ``source``."""
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in release.items():
        new = release_key_to_sca(key)
        if new is None:
            unknown.append(key)
        elif new in out:
            if not torch.equal(out[new], value):
                raise ValueError(f"{source}: {key} and another tensor map to {new} but differ")
        else:
            out[new] = value
    if unknown:
        raise KeyError(
            f"{source}: {len(unknown)} tensor(s) not in the release key table "
            f"(sca/model_zoo/release_keys.py): {unknown[:10]}"
        )
    return out


def mapping_table_markdown() -> str:
    """The table as Markdown rows, for docs/MODEL_ZOO.md."""
    rows = ["| release key prefix | this project's key prefix |", "|---|---|"]
    rows += [f"| `{src}` | `{dst}` |" for src, dst in RELEASE_KEY_RULES]
    return "\n".join(rows)
