"""Throughput of the evaluation runner on a real-size VLM: questions/s and peak GPU memory, printed as JSON.

The architecture is built from its published config values (Qwen2.5-VL-3B-Instruct, written below) with
random weights, so no download is needed; the tokenizer and processor are the tiny ones of
vlm_train/tiny.py, with the image processor at the family's real defaults (a 640x480 photo makes ~400 image
tokens, like a COCO image). Random weights never emit the stop token, so every answer runs to
--max-new-tokens: the numbers are an upper bound of the per-question time of a trained model.

    python bench/eval_gpu.py --questions 64 --batch-size 16          # GPU, bf16
    python bench/eval_gpu.py --size tiny --device cpu --questions 8   # smoke test of the script on a CPU
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Qwen/Qwen2.5-VL-3B-Instruct config.json (token ids come from the tiny tokenizer instead)
QWEN2_5_VL_3B = {
    "text_config": dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                        num_attention_heads=16, num_key_value_heads=2, max_position_embeddings=128000,
                        rms_norm_eps=1e-6, tie_word_embeddings=True,
                        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                                         "mrope_section": [16, 24, 24]}),
    "vision_config": dict(depth=32, hidden_act="silu", hidden_size=1280, intermediate_size=3420, num_heads=16,
                          out_hidden_size=2048, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                          window_size=112, fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2),
    "tie_word_embeddings": True,
}
# the family's real image processor limits (Qwen2.5-VL preprocessor_config.json)
QWEN_IMAGE_DEFAULTS = {"min_pixels": 3136, "max_pixels": 12845056}



def qwen_3b_config(tokenizer):
    """Qwen2.5-VL-3B's architecture (QWEN2_5_VL_3B) with the special-token ids of our local tokenizer."""
    from transformers import AutoConfig

    tid = tokenizer.convert_tokens_to_ids
    values = json.loads(json.dumps(QWEN2_5_VL_3B))
    values["text_config"].update(bos_token_id=tid("<|endoftext|>"), eos_token_id=tid("<|im_end|>"),
                                 pad_token_id=tid("<|endoftext|>"))
    return AutoConfig.for_model("qwen2_5_vl", **values, image_token_id=tid("<|image_pad|>"),
                                video_token_id=tid("<|video_pad|>"), vision_start_token_id=tid("<|vision_start|>"),
                                vision_end_token_id=tid("<|vision_end|>"))


def build(size: str, device: str, dtype):
    import torch
    from transformers import AutoModelForImageTextToText, Qwen2VLImageProcessor

    from vlm_train.families import family_named
    from vlm_train.tiny import build_processor, build_tiny_model, build_tokenizer

    family = family_named("qwen2_5_vl")
    tokenizer = build_tokenizer(family)
    processor = build_processor(family, tokenizer)
    if size == "tiny":
        model = build_tiny_model(family, processor.tokenizer).to(device=device, dtype=dtype)
    else:
        config = qwen_3b_config(processor.tokenizer)
        with torch.device(device):
            model = AutoModelForImageTextToText.from_config(config, dtype=dtype)
        processor.image_processor = Qwen2VLImageProcessor(**QWEN_IMAGE_DEFAULTS)
        model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
        model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.eval()
    processor.tokenizer.padding_side = "left"
    return model, processor


def synthetic_questions(n: int, width: int, height: int, seed: int = 0):
    """n (prompt, image) pairs: noise images with a coloured square, prompts from the shared builder."""
    from PIL import Image

    from blender_scenes.labels import LABELS
    from blender_scenes.prompts import build_prompt
    from blender_scenes.questions import options_with_answer, question_text

    rng = random.Random(seed)
    out = []
    for i in range(n):
        image = Image.effect_noise((width, height), 40).convert("RGB")
        x, y = rng.randrange(width - 40), rng.randrange(height - 40)
        image.paste((255, 0, 0), (x, y, x + 40, y + 40))
        answer = rng.choice(LABELS["area9"])
        options = options_with_answer("area9", answer, rng.randrange(9), rng)
        out.append((build_prompt(question_text("red square"), options), image))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["3b", "tiny"], default="3b")
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--image-size", default="640x480", help="WIDTHxHEIGHT of the synthetic images")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    args = parser.parse_args()

    import torch

    from evaluation.backends.transformers_backend import batches, generate_answers, greedy_config

    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    width, height = map(int, args.image_size.lower().split("x"))
    start = time.perf_counter()
    model, processor = build(args.size, args.device, dtype)
    build_seconds = time.perf_counter() - start
    generation_config = greedy_config(model, processor, args.max_new_tokens)
    items = synthetic_questions(args.questions, width, height)
    cuda = args.device.startswith("cuda")

    # warm-up batch (kernel selection, allocator), not timed
    warm = items[: args.batch_size]
    generate_answers(model, processor, [p for p, _ in warm], [im for _, im in warm], generation_config)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    answered = 0
    for batch in batches(items, args.batch_size):
        answers = generate_answers(model, processor, [p for p, _ in batch], [im for _, im in batch],
                                   generation_config)
        answered += len(answers)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    prompt_tokens = len(processor(text=[processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": items[0][0]}]}],
        add_generation_prompt=True, tokenize=False)], images=[[items[0][1]]])["input_ids"][0])

    print(json.dumps({
        "bench": "eval_gpu", "model": f"qwen2_5_vl-{args.size} (random weights)", "device": args.device,
        "gpu": torch.cuda.get_device_name() if cuda else None, "dtype": args.dtype,
        "questions": answered, "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
        "image_size": [width, height], "prompt_tokens_per_question": prompt_tokens,
        "parameters": sum(p.numel() for p in model.parameters()),
        "build_seconds": round(build_seconds, 2), "seconds": round(seconds, 3),
        "questions_per_second": round(answered / seconds, 3),
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3) if cuda else None,
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
    }, indent=2))


if __name__ == "__main__":
    main()
