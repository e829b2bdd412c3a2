"""Randomly initialised causal LMs of named shapes with word-level tokenizers: no downloads.

The benchmark times SCA with LMs of real sizes (``gpt2-large``, ``llama-3b``) and the tests run
it with tiny ones; both build them here. A word-level tokenizer maps each whitespace-separated
word to one id, so that any vocabulary size is covered and every id decodes to one word.
"""

from __future__ import annotations

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

EOS = "<eos>"
# Shapes by name: transformers config class and its arguments.
LM_SHAPES: dict[str, tuple[type[PretrainedConfig], dict]] = {
    "gpt2": (GPT2Config, {}),  # 124M
    "gpt2-large": (GPT2Config, {"n_embd": 1280, "n_layer": 36, "n_head": 20}),  # 774M
    "llama-3b": (  # OpenLLaMA-3B's shape
        LlamaConfig,
        {
            "vocab_size": 32000,
            "hidden_size": 3200,
            "intermediate_size": 8640,
            "num_hidden_layers": 26,
            "num_attention_heads": 32,
            "max_position_embeddings": 2048,
        },
    ),
    "tiny-gpt2": (GPT2Config, {"vocab_size": 500, "n_embd": 64, "n_layer": 2, "n_head": 2}),
    "tiny-llama": (
        LlamaConfig,
        {
            "vocab_size": 500,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
        },
    ),
}
_LM_CLASSES: dict[type[PretrainedConfig], type[PreTrainedModel]] = {
    GPT2Config: GPT2LMHeadModel,
    LlamaConfig: LlamaForCausalLM,
}


def word_tokenizer(
    vocab: dict[str, int], unk_token: str | None = None, pad_token: str | None = None
) -> PreTrainedTokenizerFast:
    """A tokenizer that splits on whitespace and maps each word of ``vocab`` (which holds
    ``<eos>``) to its id; words outside it become ``unk_token``, which needs to be in ``vocab``."""
    unk = {"unk_token": unk_token} if unk_token else {}
    pad = {"pad_token": pad_token} if pad_token else {}
    tok = Tokenizer(models.WordLevel(vocab, **unk))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, **unk, **pad)


def lm_config(shape: str, **overrides) -> PretrainedConfig:
    """The transformers config of the named shape, with ``overrides`` (e.g. the vocabulary size
    and special token ids of a tokenizer) on top."""
    config_cls, kwargs = LM_SHAPES[shape]
    return config_cls(**{**kwargs, **overrides})


def causal_lm(config: PretrainedConfig) -> PreTrainedModel:
    """A causal LM of ``config``, randomly initialised from torch's current random state."""
    return _LM_CLASSES[type(config)](config)


def random_lm(shape: str) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A random LM of a named shape in eval mode and a word-level tokenizer of its whole
    vocabulary (words ``w0``, ``w1``, ... and ``<eos>`` as the last id, also BOS and padding)."""
    config_cls, kwargs = LM_SHAPES[shape]
    eos = kwargs.get("vocab_size", config_cls().vocab_size) - 1
    vocab = {f"w{i}": i for i in range(eos)}
    vocab[EOS] = eos
    tokenizer = word_tokenizer(vocab, pad_token=EOS)
    config = lm_config(shape, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    return causal_lm(config).eval(), tokenizer
