"""Caption decoding settings: MODEL.SCA.GENERATION as one transformers ``GenerationConfig``."""

from detectron2.config import CfgNode
from transformers import GenerationConfig

CACHE_IMPLEMENTATIONS = ("", "static")


def build_generation_config(gen: CfgNode, eos_token_id: int, pad_token_id: int) -> GenerationConfig:
    """Greedy or beam-search decoding (never sampling: captions are deterministic). ``generate``
    returns its logits too: caption scores are read from them."""
    if not 0 <= gen.MIN_NEW_TOKENS <= gen.MAX_NEW_TOKENS:
        raise ValueError(
            f"MODEL.SCA.GENERATION.MIN_NEW_TOKENS={gen.MIN_NEW_TOKENS}: expected 0 to "
            f"MAX_NEW_TOKENS={gen.MAX_NEW_TOKENS}"
        )
    if gen.NUM_BEAMS < 1:
        raise ValueError(f"MODEL.SCA.GENERATION.NUM_BEAMS={gen.NUM_BEAMS}: expected >= 1")
    if gen.CACHE_IMPLEMENTATION not in CACHE_IMPLEMENTATIONS:
        raise ValueError(
            f"MODEL.SCA.GENERATION.CACHE_IMPLEMENTATION={gen.CACHE_IMPLEMENTATION!r}: expected "
            "'' (dynamic) or 'static'"
        )
    return GenerationConfig(
        max_new_tokens=gen.MAX_NEW_TOKENS,
        min_new_tokens=gen.MIN_NEW_TOKENS,
        num_beams=gen.NUM_BEAMS,
        length_penalty=gen.LENGTH_PENALTY,
        repetition_penalty=gen.REPETITION_PENALTY,
        cache_implementation=gen.CACHE_IMPLEMENTATION or None,
        do_sample=False,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        return_dict_in_generate=True,
        output_logits=True,
    )
