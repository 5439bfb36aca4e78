"""The study's models at their published size, as data: per model the architecture values of its config.json
(language model, vision tower, connector), its image processor settings, and where each number was read.

`bench/real_size.py` builds each one with random weights from these values (token ids come from the local
tokenizer instead, and the family's table supplies the processor classes). The hub was offline when these were
collected: every value was read from a public copy of the model's config.json or of its own code (HF model pages
as stored by the search index, GitHub mirrors, transformers' conversion scripts); `sources` names them and
`not_found` lists each value whose published number could not be read, with what was used instead. Plain data: no
imports beyond the standard library.
"""
from __future__ import annotations

# Qwen2.5-VL's vision tower is the same in the 3B and 7B checkpoints; only out_hidden_size (the merger's output,
# the language model's width) differs.
_QWEN2_5_VISION = dict(depth=32, hidden_act="silu", hidden_size=1280, intermediate_size=3420, num_heads=16,
                       in_channels=3, patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                       fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2, initializer_range=0.02)
# Qwen2.5-VL preprocessor_config.json: 14 px patches merged 2x2 (28x28 px a token), 4..16384 tokens an image
_QWEN2_5_IMAGE = dict(min_pixels=3136, max_pixels=12845056, patch_size=14, merge_size=2, temporal_patch_size=2,
                      image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711])
_QWEN2_5_SOURCES = [
    "Qwen/Qwen2.5-VL-7B-Instruct-AWQ config.json (Qwen's own quantisation, _name_or_path "
    "Qwen/Qwen2.5-VL-7B-Instruct): https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct-AWQ/blame/main/config.json",
    "a verbatim copy of Qwen2.5-VL-7B-Instruct's config.json (text and vision_config) in a public GitHub README "
    "(search index file id 25661707017)",
    "Qwen2.5-VL-3B-Instruct's config.json values in trl-internal-testing/tiny-Qwen2_5_VLForConditionalGeneration "
    "commit diffs (_name_or_path Qwen/Qwen2.5-VL-3B-Instruct: hidden 2048, intermediate 11008, 36 layers, 16 heads, "
    "2 kv heads, max_position 128000): https://huggingface.co/trl-internal-testing/"
    "tiny-Qwen2_5_VLForConditionalGeneration/discussions/7/files",
    "'Real Qwen2.5-VL-3B config.json ... from HuggingFace Hub' quoted in a public test fixture (search index file "
    "id 52136187002: vision out_hidden_size 2048, depth 32, hidden 1280, intermediate 3420) and another copy "
    "(id 55701591320, with fullatt_block_indexes [7, 15, 23, 31], tie_word_embeddings true, vocab 151936)",
    "image processor: min_pixels 3136 / max_pixels 12845056 as in bench/eval_gpu.py (Qwen2.5-VL "
    "preprocessor_config.json); mean/std are the CLIP values transformers' Qwen2VLImageProcessor uses",
]

MODELS: dict[str, dict] = {
    "Qwen2.5-VL-3B-Instruct": {
        "hub_id": "Qwen/Qwen2.5-VL-3B-Instruct",
        "family": "qwen2_5_vl",
        "text_config": dict(model_type="qwen2_5_vl_text", vocab_size=151936, hidden_size=2048,
                            intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                            num_key_value_heads=2, hidden_act="silu", max_position_embeddings=128000,
                            rms_norm_eps=1e-6, tie_word_embeddings=True, initializer_range=0.02,
                            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                                             "mrope_section": [16, 24, 24]}),
        "vision_config": dict(_QWEN2_5_VISION, out_hidden_size=2048),
        "config": dict(tie_word_embeddings=True, initializer_range=0.02),
        "image_processor": _QWEN2_5_IMAGE,
        "video_processor": _QWEN2_5_IMAGE,
        "processor_kwargs": {},
        "published_parameters": None,
        "sources": _QWEN2_5_SOURCES,
        "not_found": [],
    },
    "Qwen2.5-VL-7B-Instruct": {
        "hub_id": "Qwen/Qwen2.5-VL-7B-Instruct",
        "family": "qwen2_5_vl",
        "text_config": dict(model_type="qwen2_5_vl_text", vocab_size=152064, hidden_size=3584,
                            intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                            num_key_value_heads=4, hidden_act="silu", max_position_embeddings=128000,
                            rms_norm_eps=1e-6, tie_word_embeddings=False, initializer_range=0.02,
                            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                                             "mrope_section": [16, 24, 24]}),
        "vision_config": dict(_QWEN2_5_VISION, out_hidden_size=3584),
        "config": dict(tie_word_embeddings=False, initializer_range=0.02),
        "image_processor": _QWEN2_5_IMAGE,
        "video_processor": _QWEN2_5_IMAGE,
        "processor_kwargs": {},
        "published_parameters": None,
        "sources": _QWEN2_5_SOURCES,
        "not_found": [],
    },
    "InternVL3.5-8B-HF": {
        "hub_id": "OpenGVLab/InternVL3_5-8B-HF",
        "family": "internvl",
        # Qwen3-8B language model (InternVL3.5-8B = InternViT-300M + Qwen3-8B)
        "text_config": dict(model_type="qwen3", vocab_size=151936, hidden_size=4096, intermediate_size=12288,
                            num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                            hidden_act="silu", max_position_embeddings=40960, rms_norm_eps=1e-6,
                            tie_word_embeddings=False, attention_bias=False, initializer_range=0.02,
                            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
        # InternViT-300M-448px-V2.5 as the -HF conversion names it (qkv with bias, LayerNorm, layer scale 0.1)
        "vision_config": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                              hidden_act="gelu", attention_bias=True, use_qk_norm=False, norm_type="layer_norm",
                              layer_norm_eps=1e-6, image_size=[448, 448], patch_size=[14, 14],
                              layer_scale_init_value=0.1, use_absolute_position_embeddings=True,
                              use_mean_pooling=True, initializer_range=0.02),
        "config": dict(downsample_ratio=0.5, image_seq_length=256, projector_hidden_act="gelu",
                       vision_feature_layer=-1, vision_feature_select_strategy="default",
                       tie_word_embeddings=False, initializer_range=0.02),
        # GotOcr2 tiles of 448 px (ImageNet mean/std), 1..12 tiles plus a thumbnail when there are several
        "image_processor": dict(size={"height": 448, "width": 448}, crop_to_patches=True, min_patches=1,
                                max_patches=12, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]),
        "video_processor": dict(size={"height": 448, "width": 448}),
        "processor_kwargs": {"image_seq_length": 256},
        "published_parameters": 8.5e9,
        "sources": [
            "InternVL3.5 quick start (model table: InternVL3.5-8B = 0.3B vision + 8.2B language = 8.5B; "
            "transformers >= 4.52.1): ErfeiCui/InternVL-doc docs/en/internvl3.5/quick_start.md",
            "transformers src/transformers/models/internvl/convert_internvl_weights_to_hf.py (how the -HF "
            "checkpoints are made: the original llm_config and vision_config copied, qkv_bias -> attention_bias, "
            "image_token_id 151667, GotOcr2 image processor at 448x448 with ImageNet mean/std)",
            "InternViT-300M module shapes (qkv Linear 1024 -> 3072 with bias, fc1 1024 -> 4096, LayerNorm eps 1e-6) "
            "printed from OpenGVLab/InternVL3-1B, which uses the same vision tower: "
            "shivangjhalani/multicoco InternVL3-1B_data.md",
            "Qwen3-8B config.json values (hidden 4096, intermediate 12288, 36 layers, 32 heads, 8 kv heads, "
            "vocab 151936, max_position 40960) as quoted in public test fixtures (search index file ids "
            "52018680971, 56727830543)",
        ],
        "not_found": [
            "the -HF checkpoint's own config.json was not found offline: the text values are Qwen3-8B's (the "
            "published language model of InternVL3.5-8B), the vision values InternViT-300M's as the conversion "
            "script maps them; the parameter count is checked against the published 8.5B",
            "text_config.vocab_size: InternVL3.5 adds its image tokens inside Qwen3's 151936 rows (assumed)",
            "image_processor max_patches 12 / min_patches 1: InternVL's documented dynamic tiling (max_num 12), "
            "not read from the -HF preprocessor_config.json; a 336x336 civet image is one tile whatever it is",
        ],
    },
    "LLaVA-OneVision-1.5-8B-Instruct": {
        "hub_id": "lmms-lab/LLaVA-OneVision-1.5-8B-Instruct",
        "family": "llava_onevision1_5",
        # Qwen3-8B-shaped language model
        "text_config": dict(model_type="qwen3", vocab_size=151936, hidden_size=4096, intermediate_size=12288,
                            num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                            hidden_act="silu", max_position_embeddings=40960, rms_norm_eps=1e-6,
                            tie_word_embeddings=False, attention_bias=False, initializer_range=0.02,
                            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
        # RICE-ViT-L/14 with a 2x2 patch merger into the language model's width
        "vision_config": dict(depth=24, hidden_size=1024, hidden_act="gelu", intermediate_size=4096, num_heads=16,
                              in_channels=3, patch_size=14, spatial_merge_size=2, out_hidden_size=4096,
                              layer_norm_eps=1e-5, initializer_range=0.02),
        "config": dict(tie_word_embeddings=False, initializer_range=0.02),
        # a Qwen2-VL image processor with single-frame patches (RICE's patch embedding is 2D)
        "image_processor": dict(_QWEN2_5_IMAGE, temporal_patch_size=1),
        "video_processor": dict(_QWEN2_5_IMAGE, temporal_patch_size=1),
        "processor_kwargs": {},
        "published_parameters": None,
        "sources": [
            "lmms-lab/LLaVA-OneVision-1.5-8B-Base config.json (upload commit: text_config head_dim 128, hidden_size "
            "4096, intermediate_size 12288, tie_word_embeddings false, image_token_id 151655): https://huggingface.co/"
            "lmms-lab/LLaVA-OneVision-1.5-8B-Base/commit/bef9daad0953667880711875d0d3f7cd96db7a5b",
            "lmms-lab/LLaVA-OneVision-1.5-8B-Instruct configuration_llavaonevision1_5.py (RiceConfig: depth 24, "
            "hidden 1024, gelu, intermediate 4096, 16 heads, patch 14, spatial_merge 2, temporal_patch 1, "
            "layer_norm_eps 1e-5): https://huggingface.co/lmms-lab/LLaVA-OneVision-1.5-8B-Instruct/blob/main/"
            "configuration_llavaonevision1_5.py",
            "NeMo AutoModel's LLaVA-OneVision-1.5 port (Rice ViT + Qwen3 text, matching lmms-lab/LLaVA-OneVision-1.5-*"
            "-{Base,Instruct}): https://docs.nvidia.com/nemo/automodel/nightly/apidocs/nemo_automodel/"
            "nemo_automodel.components.models.llava_onevision.model.html",
        ],
        "not_found": [
            "the Instruct checkpoint's config.json itself: the Base checkpoint's (same architecture) was read; "
            "num_hidden_layers 36, heads 32/8, vocab 151936, max_position 40960 and rope_theta 1e6 are Qwen3-8B's "
            "and were not seen in the page excerpt",
            "vision_config.text_hidden_size / out_hidden_size 4096: the language model's width (required equal by "
            "transformers' LlavaOnevision15Config)",
            "preprocessor_config.json (min/max pixels): Qwen2-VL's defaults used; a 336x336 civet image gives "
            "(336/14/2)^2 = 144 tokens for any max_pixels above 112,896",
        ],
    },
    "Molmo2-8B": {
        "hub_id": "allenai/Molmo2-8B",
        "family": "molmo2",
        # key names of transformers' native Molmo2Config; the hub config.json's names in comments
        "text_config": dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                            num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=151936,
                            additional_vocab_size=128, max_position_embeddings=36864, rms_norm_eps=1e-6,
                            hidden_act="silu", qk_norm_type="qwen3", tie_word_embeddings=False,
                            initializer_range=0.02),
        # SigLIP2 so400m/14 at 378 px; the hub config declares 27 layers, transformers keeps the 25 the adapter reads
        "vit_config": dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                           num_key_value_heads=16, head_dim=72, hidden_act="gelu_pytorch_tanh",
                           layer_norm_eps=1e-6, image_default_input_size=[378, 378], image_patch_size=14,
                           initializer_range=0.02),
        "adapter_config": dict(hidden_size=1152, intermediate_size=12288, num_attention_heads=16,
                               num_key_value_heads=16, head_dim=72, hidden_act="silu", text_hidden_size=4096,
                               vit_layers=[-3, -9], initializer_range=0.02),
        "config": dict(tie_word_embeddings=False, initializer_range=0.02),
        "image_processor": dict(size={"height": 378, "width": 378}, max_crops=8, overlap_margins=[4, 4],
                                patch_size=14, pooling_size=[2, 2]),
        "video_processor": None,
        "processor_kwargs": {},
        "published_parameters": None,
        # transformers 5.25 saves Molmo2 in the hub's layout by default, fusing q/k/v (att_proj) and gate/up
        # (ff_proj) of every decoder layer into new tensors before writing: 36 x 4096 x (6144 + 24576) x 2 bytes =
        # 8.4 GiB on top of the 16.1 GiB of weights, more than this 23 GiB machine has (the first run's build was
        # killed at 20 GiB). Saved in transformers' own layout instead, which from_pretrained loads as is; the split
        # of the fused hub tensors that loading a real download does is therefore not measured here.
        "save_original_format": False,
        "sources": [
            "a copy of allenai/Molmo2-8B's config.json (adapter_config: head_dim 72, hidden 1152, intermediate "
            "12288, 16/16 heads, text_hidden_size 4096, vit_layers [-3, -9]; text_config: additional_vocab_size 128, "
            "head_dim 128, hidden 4096, intermediate 12288, layer_norm_eps 1e-6, max_position 36864): "
            "https://huggingface.co/smamooler/Molmo2-8B/blob/main/config.json",
            "allenai/Molmo2-8B configuration_molmo2.py (Molmo2VitConfig: hidden 1152, intermediate 4304, 27 layers, "
            "16 heads, head_dim 72): https://huggingface.co/allenai/Molmo2-8B/blob/main/configuration_molmo2.py",
            "transformers 5.25 Molmo2Config (documented as allenai/Molmo2-8B): the hub config's 27-layer ViT is "
            "trimmed to the 25 layers vit_layers reads; Molmo2ImageProcessor defaults 378 px crops, max_crops 8, "
            "2x2 pooling",
        ],
        "not_found": [
            "text_config num_hidden_layers 36, heads 32/8, vocab_size 151936 and qk_norm_type: cut from the page "
            "excerpt; transformers' Molmo2TextConfig defaults (documented as allenai/Molmo2-8B) used",
            "preprocessor_config.json: transformers' Molmo2ImageProcessor defaults used",
        ],
    },
}
