"""Everything that differs between VLM families, in one table keyed by transformers' `model_type`.

Per family: the LoRA targets (regular expressions over module names, for peft's `target_modules`), the
special tokens of its tokenizer, its published chat template (a data file in `templates/`), and the recipe of a
tiny random-weight checkpoint (config values and processor classes) used by tests and benches. Other modules look a family up here
(`family_of`) instead of branching on model names. Plain data: this module imports neither torch nor
transformers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache, partial
from importlib import resources
from typing import Any, Callable, Mapping

from blender_scenes.errors import InputError


@dataclass(frozen=True)
class TinyRecipe:
    """How to build a tiny checkpoint of the family: config values (given the tokenizer's token ids) and
    processor classes (transformers names) with the settings that keep image sequences short."""

    config: Callable[[Callable[[str], int], int], dict[str, Any]]  # (token_id, vocab_size) -> config kwargs
    processor_class: str
    image_processor: tuple[str, dict[str, Any]]
    video_processor: tuple[str, dict[str, Any]] | None = None
    processor_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    model_type: str
    description: str
    # part ("language", "vision") -> regex fully matching the names of the attention projections to adapt
    lora_targets: Mapping[str, str]
    special_tokens: tuple[str, ...]  # the tokenizer's special tokens; tiny tokenizers give them ids 0, 1, ...
    bos_token: str | None
    eos_token: str
    pad_token: str
    template: str  # file stem in templates/ of the family's published chat template
    tiny: TinyRecipe
    # tokens the processor reads as tokenizer attributes (InternVL: tokenizer.context_image_token, ...)
    named_tokens: Mapping[str, str] = field(default_factory=dict)

    def lora_target_regex(self, parts: tuple[str, ...] = ("language", "vision")) -> str:
        """One regex for peft `LoraConfig(target_modules=...)` covering the given parts."""
        unknown = [p for p in parts if p not in self.lora_targets]
        if unknown:
            raise InputError(f"LoRA parts {unknown} unknown for {self.model_type} "
                             f"(expected some of {sorted(self.lora_targets)})")
        return "|".join(f"(?:{self.lora_targets[p]})" for p in parts)

    @property
    def chat_template(self) -> str:
        return published_template(self.template)


# --- chat templates ------------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def published_template(name: str) -> str:
    """The chat template `templates/<name>.jinja`, byte for byte as the family's checkpoints publish it (sources in
    `templates/README.md`): read, never rebuilt, because tools such as TRL recognise templates by identity."""
    return resources.files(__package__).joinpath("templates", f"{name}.jinja").read_text(encoding="utf-8")


# --- tiny configs ------------------------------------------------------------------------------------------

# A small language model shared by all tiny checkpoints: 2 layers, width 32, grouped-query attention.
# Weights drawn wider than the usual 0.02 so that greedy answers depend on the image and the question
# (tests of batching and resume compare answers; with near-constant logits every answer is the same).
_INIT = dict(initializer_range=0.5)
_TINY_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=4096, **_INIT)
_TINY_SIGLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, **_INIT)


def _qwen_text(tid, vocab):
    return dict(_TINY_TEXT, vocab_size=vocab, bos_token_id=tid("<|endoftext|>"), eos_token_id=tid("<|im_end|>"),
                pad_token_id=tid("<|endoftext|>"),
                # mrope splits head_dim/2 = 4 rotary frequencies over (time, height, width)
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [1, 1, 2]})


def _qwen_vision_ids(tid):
    return dict(image_token_id=tid("<|image_pad|>"), video_token_id=tid("<|video_pad|>"),
                vision_start_token_id=tid("<|vision_start|>"), vision_end_token_id=tid("<|vision_end|>"))


def _qwen2_5_vl_config(tid, vocab):
    return dict(text_config=_qwen_text(tid, vocab),
                vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, out_hidden_size=32,
                                   fullatt_block_indexes=[1], window_size=56, **_INIT),
                **_qwen_vision_ids(tid), **_INIT)


def _qwen2_vl_config(tid, vocab):
    return dict(text_config=_qwen_text(tid, vocab),
                vision_config=dict(depth=2, embed_dim=32, hidden_size=32, mlp_ratio=2, num_heads=4, **_INIT),
                **_qwen_vision_ids(tid), **_INIT)


def _qwen3_vl_config(tid, vocab):
    text = dict(_qwen_text(tid, vocab), head_dim=8)
    text["rope_parameters"] = dict(text["rope_parameters"], mrope_interleaved=True)
    return dict(text_config=text,
                vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, out_hidden_size=32,
                                   patch_size=16, num_position_embeddings=16, deepstack_visual_indexes=[1], **_INIT),
                **_qwen_vision_ids(tid), **_INIT)


def _internvl_config(tid, vocab):
    text = dict(_TINY_TEXT, model_type="qwen2", vocab_size=vocab, bos_token_id=tid("<|endoftext|>"),
                eos_token_id=tid("<|im_end|>"), pad_token_id=tid("<|endoftext|>"))
    return dict(text_config=text,
                vision_config=dict(_TINY_SIGLIP, image_size=[28, 28], patch_size=[14, 14]),
                image_token_id=tid("<IMG_CONTEXT>"), image_seq_length=1, downsample_ratio=0.5, **_INIT)


def _llava_onevision_config(tid, vocab):
    text = dict(_TINY_TEXT, model_type="qwen2", vocab_size=vocab, bos_token_id=tid("<|endoftext|>"),
                eos_token_id=tid("<|im_end|>"), pad_token_id=tid("<|endoftext|>"))
    return dict(text_config=text,
                vision_config=dict(_TINY_SIGLIP, model_type="siglip_vision_model", image_size=28, patch_size=14),
                image_token_index=tid("<image>"), video_token_index=tid("<video>"),
                vision_feature_layer=-1, vision_feature_select_strategy="full",
                image_grid_pinpoints=[[28, 28], [28, 56], [56, 28], [56, 56]], **_INIT)


def _llava_onevision1_5_config(tid, vocab):
    # Qwen3 text (its head_dim defaults to 128, not hidden/heads) with plain 1D rope; RICE vision tower whose
    # 2D rope needs hidden_size divisible by 4 * num_heads
    text = dict(_TINY_TEXT, model_type="qwen3", head_dim=8, vocab_size=vocab, bos_token_id=tid("<|endoftext|>"),
                eos_token_id=tid("<|im_end|>"), pad_token_id=tid("<|endoftext|>"))
    return dict(text_config=text,
                vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, out_hidden_size=32,
                                   patch_size=14, spatial_merge_size=2, **_INIT),
                **_qwen_vision_ids(tid), **_INIT)


def _idefics3_config(tid, vocab, bos: str, pad: str):
    text = dict(_TINY_TEXT, model_type="llama", vocab_size=vocab, bos_token_id=tid(bos),
                eos_token_id=tid("<end_of_utterance>"), pad_token_id=tid(pad))
    return dict(text_config=text, vision_config=dict(_TINY_SIGLIP, image_size=28, patch_size=14),
                image_token_id=tid("<image>"), scale_factor=2, **_INIT)


# Qwen's image processor: 14-pixel patches merged 2x2, so 28x28 pixels make one token; 4..16 tokens per image.
_QWEN_PIXELS = dict(min_pixels=4 * 28 * 28, max_pixels=16 * 28 * 28)
_QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>")
_QWEN_LANGUAGE = r".*language_model\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj)"
_IDEFICS_IMAGE = dict(size={"longest_edge": 56}, max_image_size={"longest_edge": 28}, do_image_splitting=True)
# Idefics3's processor looks up its tile markers (<row_r_col_c>, <global-img>) as single tokens
_IDEFICS_TOKENS = ("<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>",
                  *(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)))


def _idefics_family(model_type: str, description: str, processor: str, image_processor: str,
                    video_processor: tuple[str, dict] | None, bos: str, pad: str) -> Family:
    """Idefics3 (Llama 3 tokens: bos <|begin_of_text|>) and SmolVLM (SmolLM2 tokens: bos <|im_start|>) differ
    only in their tokenizers' begin and padding tokens, which their published templates and configs use."""
    return Family(
        model_type=model_type, description=description,
        lora_targets={"language": r".*text_model\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj)",
                      "vision": r".*vision_model\.encoder\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj)"},
        special_tokens=(bos, pad, *_IDEFICS_TOKENS), bos_token=bos, eos_token="<end_of_utterance>",
        pad_token=pad, template=model_type,
        tiny=TinyRecipe(config=partial(_idefics3_config, bos=bos, pad=pad), processor_class=processor,
                        image_processor=(image_processor, _IDEFICS_IMAGE), video_processor=video_processor,
                        # (28/14)^2 patches / scale_factor^2 = 1 token per image tile
                        processor_kwargs={"image_seq_len": 1}),
    )


def _molmo2_config(tid, vocab):
    # head_dim set: Molmo2's defaults (128 text, 72 vision) are not hidden/heads. The vision-language adapter pools
    # 2x2 patches by attention over the features of two ViT layers concatenated (the released ones read [-3, -9]).
    text = dict(_TINY_TEXT, head_dim=8, vocab_size=vocab, additional_vocab_size=0, bos_token_id=tid("<|im_end|>"),
                eos_token_id=tid("<|im_end|>"), pad_token_id=tid("<|endoftext|>"))
    vision = dict(_TINY_SIGLIP, num_key_value_heads=4, head_dim=8, image_size=[56, 56], patch_size=14)
    adapter = dict(vision_feature_layer=[-1, -2], hidden_size=32, num_attention_heads=4, num_key_value_heads=4,
                   head_dim=8, intermediate_size=64, text_hidden_size=32, **_INIT)
    return dict(text_config=text, vision_config=vision, adapter_config=adapter,
                image_start_token_id=tid("<im_start>"), low_res_image_start_token_id=tid("<low_res_im_start>"),
                image_end_token_id=tid("<im_end>"), image_patch_id=tid("<im_patch>"),
                frame_start_token_id=tid("<frame_start>"), frame_end_token_id=tid("<frame_end>"), **_INIT)


# Molmo2's tokenizer (Qwen3's for Molmo2-4B/-8B) adds the image layout tokens the processor writes around patches
_MOLMO2_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<im_start>", "<im_end>", "<im_patch>", "<im_col>",
                  "<low_res_im_start>", "<|image|>", "<im_low>", "<frame_start>", "<frame_end>", "<|video|>")


FAMILIES: dict[str, Family] = {f.model_type: f for f in (
    Family(
        model_type="qwen2_5_vl", description="Qwen2.5-VL (Qwen/Qwen2.5-VL-3B-Instruct, -7B, ...)",
        lora_targets={"language": _QWEN_LANGUAGE, "vision": r".*visual\.blocks\.\d+\.attn\.qkv"},
        special_tokens=_QWEN_SPECIALS, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        template="qwen2_5_vl",
        tiny=TinyRecipe(config=_qwen2_5_vl_config, processor_class="Qwen2_5_VLProcessor",
                        image_processor=("Qwen2VLImageProcessor", _QWEN_PIXELS),
                        video_processor=("Qwen2VLVideoProcessor", _QWEN_PIXELS)),
    ),
    Family(
        model_type="qwen2_vl", description="Qwen2-VL (Qwen/Qwen2-VL-2B-Instruct, ...)",
        lora_targets={"language": _QWEN_LANGUAGE, "vision": r".*visual\.blocks\.\d+\.attn\.qkv"},
        special_tokens=_QWEN_SPECIALS, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        template="qwen2_5_vl",
        tiny=TinyRecipe(config=_qwen2_vl_config, processor_class="Qwen2VLProcessor",
                        image_processor=("Qwen2VLImageProcessor", _QWEN_PIXELS),
                        video_processor=("Qwen2VLVideoProcessor", _QWEN_PIXELS)),
    ),
    Family(
        model_type="llava_onevision",
        description="LLaVA-OneVision (llava-hf/llava-onevision-qwen2-0.5b-ov-hf, ...)",
        lora_targets={"language": _QWEN_LANGUAGE,
                      "vision": r".*vision_tower\.(?:vision_model\.)?encoder\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj)"},
        special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"),
        bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>", template="llava_onevision",
        tiny=TinyRecipe(
            config=_llava_onevision_config, processor_class="LlavaOnevisionProcessor",
            # 28-pixel tiles of 2x2 patches; anyres picks a 1x1..2x2 grid of tiles for the image
            image_processor=("LlavaOnevisionImageProcessor",
                             dict(size={"height": 28, "width": 28},
                                  image_grid_pinpoints=[[28, 28], [28, 56], [56, 28], [56, 56]], **_INIT)),
            video_processor=("LlavaOnevisionVideoProcessor", dict(size={"height": 28, "width": 28})),
            processor_kwargs={"num_image_tokens": 4, "vision_feature_select_strategy": "full"}),
    ),
    Family(
        model_type="llava_onevision1_5",
        description="LLaVA-OneVision-1.5 (lmms-lab/LLaVA-OneVision-1.5-8B-Instruct, -4B; native -hf conversions)",
        # Qwen3 language model; RICE vision blocks fuse q/k/v into one `qkv` linear layer, like Qwen's
        lora_targets={"language": _QWEN_LANGUAGE, "vision": r".*visual\.blocks\.\d+\.attn\.qkv"},
        special_tokens=_QWEN_SPECIALS, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        template="llava_onevision1_5",
        tiny=TinyRecipe(config=_llava_onevision1_5_config, processor_class="Exaone4_5_Processor",
                        # 14-pixel patches merged 2x2 as Qwen's, but single frames: the RICE patch embedding is 2D
                        # (the released checkpoints set temporal_patch_size 1)
                        image_processor=("Qwen2VLImageProcessor", dict(_QWEN_PIXELS, temporal_patch_size=1)),
                        video_processor=("Qwen2VLVideoProcessor", dict(_QWEN_PIXELS, temporal_patch_size=1))),
    ),
    Family(
        model_type="qwen3_vl", description="Qwen3-VL (Qwen/Qwen3-VL-2B-Instruct, -4B, -8B, ...)",
        lora_targets={"language": _QWEN_LANGUAGE, "vision": r".*visual\.blocks\.\d+\.attn\.qkv"},
        special_tokens=_QWEN_SPECIALS, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        template="qwen3_vl",
        tiny=TinyRecipe(config=_qwen3_vl_config, processor_class="Qwen3VLProcessor",
                        # 16-pixel patches merged 2x2: 32x32 pixels make one token; 4..16 tokens per image
                        image_processor=("Qwen2VLImageProcessor",
                                         dict(patch_size=16, size={"shortest_edge": 4 * 32 * 32,
                                                                   "longest_edge": 16 * 32 * 32})),
                        video_processor=("Qwen3VLVideoProcessor",
                                         dict(size={"shortest_edge": 4 * 32 * 32, "longest_edge": 16 * 32 * 32}))),
    ),
    Family(
        model_type="internvl", description="InternVL3 / InternVL3.5, -hf checkpoints (OpenGVLab/InternVL3_5-8B-HF, ...)",
        lora_targets={"language": _QWEN_LANGUAGE,
                      "vision": r".*vision_tower\.encoder\.layer\.\d+\.attention\.(q_proj|k_proj|v_proj)"},
        special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>",
                        "<video>"),
        named_tokens={"start_image_token": "<img>", "end_image_token": "</img>",
                      "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"},
        bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>", template="internvl",
        tiny=TinyRecipe(config=_internvl_config, processor_class="InternVLProcessor",
                        # 28-pixel tiles, up to 4 of them plus a thumbnail; 1 token per tile
                        image_processor=("GotOcr2ImageProcessor",
                                         dict(size={"height": 28, "width": 28}, crop_to_patches=True,
                                              min_patches=1, max_patches=4)),
                        video_processor=("InternVLVideoProcessor", dict(size={"height": 28, "width": 28})),
                        processor_kwargs={"image_seq_length": 1}),
    ),
    _idefics_family("idefics3", "Idefics3 and SmolVLM (HuggingFaceM4/Idefics3-8B-Llama3, "
                    "HuggingFaceTB/SmolVLM-256M-Instruct, ...)", "Idefics3Processor", "Idefics3ImageProcessor", None,
                    bos="<|begin_of_text|>", pad="<|end_of_text|>"),
    _idefics_family("smolvlm", "SmolVLM2 (HuggingFaceTB/SmolVLM2-256M-Video-Instruct, ...)",
                    "SmolVLMProcessor", "SmolVLMImageProcessor",
                    ("SmolVLMVideoProcessor", dict(size={"longest_edge": 56}, max_image_size={"longest_edge": 28})),
                    bos="<|im_start|>", pad="<|im_end|>"),
    Family(
        model_type="molmo2", description="Molmo2 (allenai/Molmo2-4B, -8B; native classes of transformers 5.25)",
        # the adapter's attention pooling (q/k/v over the ViT patches) counts as vision: the lab's Molmo targets
        # `wq,wk,wv` hit both the ViT and this pooling attention, and discovery (`vlm_train/lora.py`) finds both
        lora_targets={"language": _QWEN_LANGUAGE,
                      "vision": r".*(?:vision_tower\.layers\.\d+\.self_attn|multi_modal_projector\.image_pooling_2d)"
                                r"\.(q_proj|k_proj|v_proj)"},
        # the published special_tokens_map names <|im_end|> as bos too; the processor prepends it to every prompt
        special_tokens=_MOLMO2_TOKENS, bos_token="<|im_end|>", eos_token="<|im_end|>", pad_token="<|endoftext|>",
        template="molmo2",
        tiny=TinyRecipe(config=_molmo2_config, processor_class="Molmo2Processor",
                        # 56-pixel crops of 4x4 patches (a 1-patch margin overlaps the neighbour crop), pooled 2x2:
                        # 4 tokens for the low-resolution view plus 4..10 for up to 4 crops
                        image_processor=("Molmo2ImageProcessor", dict(size={"height": 56, "width": 56}, max_crops=4,
                                                                      overlap_margins=[1, 1])),
                        video_processor=("Molmo2VideoProcessor", dict(size={"height": 56, "width": 56})),
                        # as the released processor_config.json: no <im_col> in the low-resolution view
                        processor_kwargs={"use_single_crop_col_tokens": False}),
    ),
)}


def family_named(model_type: str) -> Family:
    try:
        return FAMILIES[model_type]
    except KeyError:
        raise InputError(f"model family '{model_type}' unknown (expected one of {', '.join(FAMILIES)})") from None


def family_of(model_or_config: Any) -> Family:
    """The family of a transformers model, a config, or a PeftModel wrapping one (by `config.model_type`)."""
    config = getattr(model_or_config, "config", model_or_config)
    model_type = config.get("model_type") if isinstance(config, dict) else getattr(config, "model_type", None)
    if model_type is None:
        raise InputError(f"{type(model_or_config).__name__}: no model_type (expected a transformers model or config)")
    return family_named(model_type)
