"""Tiny random SAM / LM configurations for tests: real code paths, seconds on a CPU."""

from pathlib import Path

from detectron2.config import CfgNode, get_cfg
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from sca.config import add_sca_config

WORDS = (
    "a an the small large red green blue yellow circle square triangle cat dog sits on mat "
    "man riding horse tree left right of near"
).split()


def make_tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    vocab = {"<unk>": 0, "<eos>": 1}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>")
    fast.save_pretrained(folder)
    return fast


def make_tiny_lm(folder: Path, arch: str = "gpt2", seed: int = 0) -> Path:
    """A random tiny causal LM with a word-level tokenizer, saved as a Hugging Face folder."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(folder)
    torch.manual_seed(seed)
    if arch == "gpt2":
        config = GPT2Config(
            vocab_size=len(tok),
            n_positions=64,
            n_embd=64,
            n_layer=2,
            n_head=2,
            eos_token_id=tok.eos_token_id,
            initializer_range=0.2,
            bos_token_id=tok.eos_token_id,
        )
        model = GPT2LMHeadModel(config)
    elif arch == "llama":
        config = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
            eos_token_id=tok.eos_token_id,
            initializer_range=0.2,
            bos_token_id=tok.eos_token_id,
            tie_word_embeddings=True,
        )
        model = LlamaForCausalLM(config)
    else:
        raise ValueError(arch)
    model.save_pretrained(folder)
    return folder


def tiny_cfg(lm_folder: Path | str, image_size: int = 64) -> CfgNode:
    """A complete SCA config with a 2-block 32-wide SAM encoder and a 2-layer mixer."""
    cfg = get_cfg()
    add_sca_config(cfg)
    cfg.MODEL.DEVICE = "cpu"
    cfg.INPUT.IMAGE_SIZE = image_size
    sam = cfg.MODEL.SCA.SAM
    sam.ENCODER = "custom"
    sam.EMBED_DIM, sam.DEPTH, sam.NUM_HEADS, sam.GLOBAL_ATTN_INDEXES = 32, 2, 2, [1]
    sam.WINDOW_SIZE = 2
    sam.PROMPT_EMBED_DIM = 32
    sam.DECODER_MLP_DIM = 64
    mixer = cfg.MODEL.SCA.MIXER
    mixer.DEPTH, mixer.NUM_HEADS, mixer.MLP_DIM, mixer.NUM_CAPTION_TOKENS = 2, 4, 64, 4
    cfg.MODEL.SCA.LM.NAME_OR_PATH = str(lm_folder)
    cfg.MODEL.SCA.LM.NUM_TASK_TOKENS = 2
    cfg.MODEL.SCA.GENERATION.MAX_NEW_TOKENS = 8
    return cfg
