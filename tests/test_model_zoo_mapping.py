"""The release key table at the paper's real shapes (meta device, no weights): every release
tensor lands on exactly one tensor of this project's model with the same shape, none is left."""

import json
import pickle

import pytest
import torch
from conftest import REPO, SHARED_DATA
from tiny_models import make_tokenizer
from transformers import AutoConfig, AutoModelForCausalLM, SamConfig, SamModel
from transformers.models.sam.configuration_sam import (
    SamMaskDecoderConfig,
    SamPromptEncoderConfig,
    SamVisionConfig,
)
from transformers.models.sam.modeling_sam import SamTwoWayTransformer

from sca.model_zoo import get_config
from sca.model_zoo.convert import build_meta_model, release_cfg, tie_and_check
from sca.model_zoo.release_io import read_release_weights
from sca.model_zoo.release_keys import (
    convert_release_state_dict,
    mapping_table_markdown,
    release_key_to_sca,
)
from sca.utils.safe_load import UnsafeCheckpointError

OFFICIAL = SHARED_DATA / "sca_official_tiny"
GPT2_LARGE = {"model_type": "gpt2", "n_embd": 1280, "n_layer": 36, "n_head": 20}
OPEN_LLAMA_3B = {
    "model_type": "llama",
    "hidden_size": 3200,
    "intermediate_size": 8640,
    "num_hidden_layers": 26,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32000,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
}


def paper_release_config(text_config: dict) -> dict:
    """A release config.json at the paper's shapes: SAM ViT-H, 12-layer mixer, 8 + 2x6 tokens."""
    vision = SamVisionConfig(
        hidden_size=1280,
        num_hidden_layers=32,
        num_attention_heads=16,
        global_attn_indexes=[7, 15, 23, 31],
        mlp_dim=5120,
    ).to_dict()
    decoder = SamMaskDecoderConfig().to_dict()
    decoder.update(additional_num_hidden_layers=12, num_caption_tokens=8, num_caption_heads=1)
    return {
        "vision_config": vision,
        "prompt_encoder_config": SamPromptEncoderConfig().to_dict(),
        "mask_caption_decoder_config": decoder,
        "text_config": text_config,
        "num_task_tokens": 6,
        "vl_projector_type": "linear",
        "use_decoder_only_language_model": True,
    }


def _first_names(module: torch.nn.Module, prefix: str = "") -> dict[str, torch.Size]:
    """State-dict names and shapes, a tensor stored in two places listed once (as
    save_pretrained stores it: the first name)."""
    seen, out = set(), {}
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if id(tensor) in seen or name not in module.state_dict():
            continue
        seen.add(id(tensor))
        out[prefix + name] = tensor.shape
    return out


def release_tensor_shapes(config: dict) -> dict[str, torch.Size]:
    """Names and shapes of a release's tensors, from transformers' SAM classes (the release's
    building blocks) plus SCA's own tensors, on the meta device."""
    decoder = config["mask_caption_decoder_config"]
    text = config["text_config"]
    with torch.device("meta"):
        sam = SamModel(
            SamConfig(
                vision_config=config["vision_config"],
                prompt_encoder_config=config["prompt_encoder_config"],
                mask_decoder_config=decoder,
            )
        )
        mixer_config = SamMaskDecoderConfig(**decoder)
        mixer_config.num_hidden_layers = decoder["additional_num_hidden_layers"]
        mixer = SamTwoWayTransformer(mixer_config)
        fields = {k: v for k, v in text.items() if k != "model_type"}
        lm = AutoModelForCausalLM.from_config(AutoConfig.for_model(text["model_type"], **fields))
    d_lm, width = lm.get_input_embeddings().embedding_dim, decoder["hidden_size"]
    shapes = {
        **_first_names(sam),
        **_first_names(mixer, "mask_decoder.additional_transformer."),
        **_first_names(lm, "language_model."),
        "mask_decoder.caption_tokens.weight": torch.Size([decoder["num_caption_tokens"], width]),
        "language_project.weight": torch.Size([d_lm, width]),
        "language_project.bias": torch.Size([d_lm]),
        "task_tokens.weight": torch.Size([2 * config["num_task_tokens"], d_lm]),
    }
    return shapes


def meta_model(config: dict, folder):
    text = config["text_config"]
    fields = {k: v for k, v in text.items() if k != "model_type"}
    AutoConfig.for_model(text["model_type"], **fields).save_pretrained(folder)
    make_tokenizer(folder)
    cfg = release_cfg(config, str(folder), "test release")
    return cfg, build_meta_model(cfg)


@pytest.mark.skipif(not (OFFICIAL / "config.json").is_file(), reason="../shared/data is absent")
def test_shape_generator_reproduces_the_official_file():
    config = json.loads((OFFICIAL / "config.json").read_text())
    stored = {k: v.shape for k, v in read_release_weights(OFFICIAL).items()}
    assert release_tensor_shapes(config) == stored


@pytest.mark.parametrize("name,text", [("gpt2_large", GPT2_LARGE), ("ollm3bv2", OPEN_LLAMA_3B)])
def test_every_release_tensor_lands_once_at_paper_shapes(name, text, tmp_path):
    config = paper_release_config(text)
    shapes = release_tensor_shapes(config)
    release = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    mapped = {k: release_key_to_sca(k) for k in release}
    assert None not in mapped.values()
    assert len(set(mapped.values())) == len(release)  # one release tensor per model tensor
    cfg, model = meta_model(config, tmp_path)
    state = tie_and_check(convert_release_state_dict(release), model, name)
    model_state = model.state_dict()
    assert set(state) == set(model_state)
    assert all(state[k].shape == v.shape for k, v in model_state.items())
    tied = set(state) - set(mapped.values())  # filled from the tensor they share
    assert tied == ({"roi_heads.captioner.lm.lm_head.weight"} if name == "gpt2_large" else set())
    # ViT-H with GPT-2 large: 19.4M trainable parameters in the paper (mixer 19.09M)
    if name == "gpt2_large":
        mixer = sum(v.numel() for k, v in model_state.items() if k.startswith("roi_heads.mixer."))
        assert round(mixer / 1e6, 1) == 19.1


@pytest.mark.parametrize(
    "zoo_name,text", [("sca_gpt2_large_vg", GPT2_LARGE), ("sca_ollm3bv2_vg", OPEN_LLAMA_3B)]
)
def test_zoo_configs_match_the_release_config(zoo_name, text, tmp_path):
    converted = release_cfg(paper_release_config(text), str(tmp_path), "test")
    shipped = get_config(zoo_name)
    for key in ("SAM", "MIXER"):
        a, b = dict(converted.MODEL.SCA[key]), dict(shipped.MODEL.SCA[key])
        a.pop("CHECKPOINT", None), b.pop("CHECKPOINT", None)  # weights come from elsewhere
        assert a == b, key
    for key in ("NUM_TASK_TOKENS", "TASK_NAMES", "TASK"):
        assert converted.MODEL.SCA.LM[key] == shipped.MODEL.SCA.LM[key]
    assert converted.INPUT.IMAGE_SIZE == shipped.INPUT.IMAGE_SIZE


def test_docs_table_is_the_code_table():
    assert mapping_table_markdown() in (REPO / "docs" / "MODEL_ZOO.md").read_text()


def test_bad_releases_are_named(tmp_path):
    with pytest.raises(KeyError, match="vision_encoder.extra.weight"):
        convert_release_state_dict({"vision_encoder.extra.weight": torch.zeros(1)}, "rel")
    config = paper_release_config(GPT2_LARGE)
    config["vision_config"].update(hidden_size=32, num_hidden_layers=2, mlp_dim=128)
    config["text_config"] = {"model_type": "gpt2", "n_embd": 16, "n_layer": 1, "n_head": 2}
    config["mask_caption_decoder_config"]["additional_num_hidden_layers"] = 1
    shapes = release_tensor_shapes(config)
    _, model = meta_model(config, tmp_path)
    release = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    wrong = dict(release, **{"language_project.bias": torch.empty(3, device="meta")})
    with pytest.raises(ValueError, match="shape mismatch: roi_heads.captioner.language_project"):
        tie_and_check(convert_release_state_dict(wrong), model, "rel")
    fewer = {k: v for k, v in release.items() if k != "task_tokens.weight"}
    with pytest.raises(ValueError, match=r"missing keys \(1\).*task_tokens"):
        tie_and_check(convert_release_state_dict(fewer), model, "rel")
    config["mask_caption_decoder_config"]["num_caption_heads"] = 2
    with pytest.raises(ValueError, match="num_caption_heads=2"):
        release_cfg(config, str(tmp_path), "rel")


class _RunsCode:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_release_folders_never_unpickle_code(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        read_release_weights(tmp_path)
    with open(tmp_path / "pytorch_model.bin", "wb") as f:
        pickle.dump({"x": _RunsCode()}, f)
    with pytest.raises(UnsafeCheckpointError, match="Refusing to load"):
        read_release_weights(tmp_path)
