"""Learnability benchmark (not a test): does the training pipeline teach absolute position from scratch?

A small VLM of a real architecture (default Idefics3/SmolVLM: SigLIP vision encoder, linear connector,
Llama text model; about 1.7M weights, random initialisation) is trained from scratch (`--full`) through
`vlm_train.train.train` (the code behind `scenes2real train`) on the `civet` preset rendered by our renderer,
unchanged except for the image size (`--size`, default 126 px instead of 336): a 9x9 placement grid, answer
areas of 3x3 cells, train/val = the four white shapes and the plus in six colours (1,296 / 324 scenes), test =
the 24 colour/shape pairs never seen in training (3,888 scenes). During training it answers fixed samples of
the validation and test questions greedily with the evaluation runner's functions, parsed by
`evaluation.parse` (chance 1/9); at the end the kept checkpoint (best validation loss) answers every test
question through `scenes2real evaluate`: that is `test_accuracy`.

Why 126 px: one vision patch (42 px) per answer area, so every object lies inside one patch and the image is 9
tokens, one per area (see `idefics3_arch`, which also says why the pixels are not centred). Training: batch 32,
AdamW lr 2e-3 after 100 warm-up steps, decaying linearly to 0 over 20 epochs (820 steps; at lr 2e-3 the sampled
accuracies still swing by 10-30 points from epoch to epoch, so the run ends with the rate decayed rather than at
a first good epoch), kept model = best validation loss. It stops early only after `--budget-cpu-min` CPU minutes
(process CPU time, all threads), or with `--stop-val-accuracy A` once the sampled validation accuracy is >= A
twice in a row; early stopping on validation loss is off (`--patience` = `--epochs`). One torch thread by default: on this
shared 2-core machine two threads spin-wait and cost about 5x the CPU per step.

    python bench/learn.py                       # render, build the model, train, evaluate, print JSON
    python bench/learn.py --seed 1              # another seed (design shuffles, split, weights, data order)
    python bench/learn.py --dataset DIR         # reuse a rendered dataset (DIR/questions/{train,val,test}.jsonl)

Where position becomes decodable in this model, before and after training: `bench/learn_diagnosis.py`
(README, "Learnability"), which also holds the earlier design that stayed at chance, and why.

Prints one JSON object: `test_accuracy`, `chance`, `heldout_pairs`, dataset counts, model size, the sampled
accuracies and losses over epochs with CPU seconds, wall and CPU time, and provenance (command, seed, versions,
cores, load average).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRESET = ROOT / "blender_scenes" / "presets" / "civet.toml"


def civet_design(size: int, seed: int) -> str:
    """The `civet` preset verbatim (9x9 grid, areas of 3x3 cells, white shapes + coloured plus in train/val,
    the 24 unseen colour/shape pairs in test) with only the image size, name and seed changed."""
    text = PRESET.read_text()
    for old, new in (("width = 336", f"width = {size}"), ("height = 336", f"height = {size}"),
                     ('name = "civet"', 'name = "civet-learn"'), ("seed = 0", f"seed = {seed}")):
        if old not in text:
            raise SystemExit(f"{PRESET}: expected a line '{old}' to rewrite")
        text = text.replace(old, new, 1)
    return "# bench/learn.py: the civet preset at a smaller image size\n" + text

# The small models: wide enough to learn the task from scratch on a CPU in minutes; usual initialisation
# (the tiny test checkpoints draw wider weights on purpose, which hampers training from scratch).
INIT = dict(initializer_range=0.02)
ARCHS = {
    "qwen2_5_vl": dict(
        text=dict(hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=1024, **INIT,
                  # head_dim 32: 16 rotary frequencies split over (time, height, width)
                  rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]}),
        vision=dict(depth=2, hidden_size=128, intermediate_size=256, num_heads=4, out_hidden_size=128,
                    fullatt_block_indexes=[1], window_size=112, **INIT),
        image_processor=None, processor_kwargs=None),
    # SigLIP vision (learned absolute position embeddings), pixel shuffle, Llama text model; see idefics3_arch
    "idefics3": None,
}


def idefics3_arch(size: int, layout: str = "area-patches") -> dict:
    """One vision patch per answer area, one image token per patch: at `size` px (a multiple of 9) the vision
    encoder cuts 3x3 patches of size/3 px (each patch is one answer area, 3x3 cells of the 9x9 grid, so every
    object lies inside one patch), and the connector keeps them as they are (scale_factor 1): the image is 9
    tokens, token k is area k. One image, no tiling.

    Two choices make the object's token stand out from the eight empty ones at initialisation, which is what
    lets training leave the chance plateau (README, "Learnability"; `bench/learn_diagnosis.py`):
    - pixels scaled to [0, 1] without centring (image_mean 0, image_std 1), so a black patch embeds to its
      position embedding alone and an object adds its own term; centred pixels (-1 for black) give every patch
      the same large constant, beside which an object is a small change;
    - one patch per area rather than 3x3 patches merged by the pixel shuffle, where an object changes one of
      nine slots of its token (under a third of the token's norm, in a direction that differs by slot).
    The vision position embeddings are drawn at std 0.1, about an object's term: the object's token then says
    where it is as well as that something is there.

    `layout="merged-cells"` is the earlier design, which stays at chance (kept to reproduce that): one 14 px
    patch per grid cell, 3x3 patches merged into each area's token by the pixel shuffle, centred pixels, position
    embeddings at std 0.5."""
    if size % 9:
        raise SystemExit(f"--size {size}: expected a multiple of 9 (the 9x9 placement grid)")
    merged = layout == "merged-cells"
    # uncentred pixels: rescaled to [0, 1] and "normalised" by mean 0, std 1; the merged layout keeps the default
    pixels = {} if merged else dict(image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0])
    return dict(
        text=dict(hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=1024, **INIT),
        vision=dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                    image_size=size, patch_size=size // (9 if merged else 3), **INIT),
        config=dict(scale_factor=3 if merged else 1),
        vision_position_std=0.5 if merged else 0.1,
        image_processor=dict(size={"longest_edge": size}, max_image_size={"longest_edge": size},
                             do_image_splitting=False, **pixels),
        processor_kwargs={"image_seq_len": 9})


def arch_for(family_name: str, size: int, layout: str = "area-patches") -> dict:
    return idefics3_arch(size, layout) if family_name == "idefics3" else ARCHS[family_name]


def render(work: Path, size: int, seed: int) -> tuple[Path, float]:
    config = work / "design.toml"
    config.write_text(civet_design(size, seed))
    data = work / "data"
    if data.exists():
        shutil.rmtree(data)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "scenes2real", "render", str(config), "--out", str(data)],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return data, time.perf_counter() - started


def build_model(out: Path, family_name: str, seed: int, size: int, layout: str = "area-patches") -> int:
    """A checkpoint with random weights: the family's tiny tokenizer and processor, a wider model (ARCHS)."""
    import dataclasses

    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    from vlm_train.families import family_named
    from vlm_train.tiny import build_processor, build_tokenizer

    arch = arch_for(family_name, size, layout)
    family = family_named(family_name)
    tiny = family.tiny
    if arch["image_processor"] is not None:
        tiny = dataclasses.replace(tiny, image_processor=(tiny.image_processor[0], arch["image_processor"]),
                                   processor_kwargs=arch["processor_kwargs"])
    family = dataclasses.replace(family, tiny=tiny)
    processor = build_processor(family, build_tokenizer(family))
    tokenizer = processor.tokenizer
    values = family.tiny.config(tokenizer.convert_tokens_to_ids, len(tokenizer))
    values["text_config"] = {**values["text_config"], **arch["text"]}
    values["vision_config"] = {**values["vision_config"], **arch["vision"]}
    values.update(INIT)
    values.update(arch.get("config", {}))
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(AutoConfig.for_model(family.model_type, **values))
    if arch.get("vision_position_std"):
        with torch.no_grad():
            model.model.vision_model.embeddings.position_embedding.weight.normal_(0, arch["vision_position_std"])
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def accuracy_callback(model_dir: Path, sets: dict[str, Path], results: list, started: float, every: int,
                      budget_cpu_s: float, sample: int, seed: int, stop_val: float | None, batch_size: int = 32):
    """Every `every` epochs: greedy answers to (a fixed random sample of `sample`) questions of each set, parsed,
    compared with the answers. Stops training once this process has used `budget_cpu_s` CPU seconds (all
    threads) since `started` (CPU time, not wall time: the machine may be shared), or once the sampled
    validation accuracy (seen colour/shape pairs, never the test's) has reached `stop_val` twice in a row."""
    import random

    from transformers import AutoProcessor, TrainerCallback

    from blender_scenes.prompts import record_prompt
    from blender_scenes.questions import read_questions, resolve_image
    from evaluation.parse import parse_answer
    from evaluation.backends.transformers_backend import generate_answers, greedy_config, open_image

    chosen = {}
    for name, questions in sets.items():
        records = read_questions(questions)
        if sample and len(records) > sample:
            records = random.Random(seed).sample(records, sample)
        chosen[name] = (records, [open_image(resolve_image(r, questions), str(questions)) for r in records])
    processor = AutoProcessor.from_pretrained(model_dir)
    processor.tokenizer.padding_side = "left"

    def accuracy(model, records, images) -> float:
        model.eval()
        config = greedy_config(model, processor, max_new_tokens=6)
        correct = 0
        for start in range(0, len(records), batch_size):
            chunk = records[start:start + batch_size]
            answers = generate_answers(model, processor, [record_prompt(r) for r in chunk],
                                       images[start:start + batch_size], config)
            correct += sum(parse_answer(a, r.task, r.options) == r.answer for a, r in zip(answers, chunk))
        model.train()
        return correct / len(records)

    class Accuracy(TrainerCallback):
        def on_epoch_end(self, args, state, control, model=None, **kwargs):
            epoch = round(state.epoch)
            out_of_time = time.process_time() - started > budget_cpu_s
            if out_of_time:
                control.should_training_stop = True
            if epoch % every == 0 or epoch == args.num_train_epochs or out_of_time:
                row = {"epoch": epoch, "step": state.global_step}
                for name, (records, images) in chosen.items():
                    row[f"{name}_accuracy"] = round(accuracy(model, records, images), 4)
                row.update(cpu_s=round(time.process_time() - started, 1))
                results.append(row)
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
                if (stop_val is not None and len(results) >= 2
                        and all(r.get("val_accuracy", 0) >= stop_val for r in results[-2:])):
                    control.should_training_stop = True

    return Accuracy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "learn-bench")
    parser.add_argument("--dataset", type=Path, help="A rendered dataset to reuse instead of rendering.")
    parser.add_argument("--family", choices=sorted(ARCHS), default="idefics3")
    parser.add_argument("--layout", choices=["area-patches", "merged-cells"], default="area-patches",
                        help="idefics3's image layout (see idefics3_arch); merged-cells is the earlier design")
    parser.add_argument("--size", type=int, default=126,
                        help="image px, a multiple of 9 (the civet preset draws 336)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=100,
                        help="learning-rate warm-up steps (a fraction of all steps when below 1)")
    parser.add_argument("--patience", type=int, default=20,
                        help="early stopping on validation perplexity (from scratch the loss plateaus for a while)")
    parser.add_argument("--eval-every", type=int, default=1, help="accuracy on the sampled questions every N epochs")
    parser.add_argument("--eval-sample", type=int, default=180,
                        help="questions per set (val, test) scored during training; the final score uses all")
    parser.add_argument("--budget-cpu-min", type=float, default=20.0,
                        help="stop training once it has used this many CPU minutes (all threads)")
    parser.add_argument("--stop-val-accuracy", type=float, default=None,
                        help="stop once the sampled validation accuracy reaches this at two evaluations in a row "
                             "(off by default: the run ends with the learning rate decayed)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (2 on a shared 2-core machine spin-wait: 5x the CPU per step)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from blender_scenes.questions import read_questions
    from bench.provenance import provenance
    from vlm_train.train import TrainConfig, train

    started, cpu_started = time.perf_counter(), time.process_time()
    args.work.mkdir(parents=True, exist_ok=True)
    render_s = None
    data = args.dataset
    if data is None:
        data, render_s = render(args.work, args.size, args.seed)
    questions = {s: data / "questions" / f"{s}.jsonl" for s in ("train", "val", "test")}
    model_dir = args.work / "model"
    parameters = build_model(model_dir, args.family, args.seed, args.size, args.layout)

    results: list[dict] = []
    run = args.work / "run"
    if run.exists():
        shutil.rmtree(run)
    train_started, train_cpu_started = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer's log lines; stdout is the JSON
        stats = train(TrainConfig(model=str(model_dir), train=str(questions["train"]), val=str(questions["val"]),
                                  out=str(run), full=True, lr=args.lr, warmup=args.warmup, epochs=args.epochs,
                                  batch_size=args.batch_size, patience=args.patience, seed=args.seed, dtype="fp32"),
                      callbacks=[accuracy_callback(model_dir, {"val": questions["val"], "test": questions["test"]},
                                                   results, train_cpu_started, args.eval_every,
                                                   args.budget_cpu_min * 60, args.eval_sample, args.seed,
                                                   args.stop_val_accuracy)])
    train_s, train_cpu_s = time.perf_counter() - train_started, time.process_time() - train_cpu_started

    if (args.work / "evaluate").exists():   # a previous run's answers (evaluate refuses to mix them)
        shutil.rmtree(args.work / "evaluate")
    evaluated = subprocess.run(
        [sys.executable, "-m", "scenes2real", "evaluate", "--model", str(run / "best"), "--questions",
         str(questions["test"]), "--out", str(args.work / "evaluate"), "--device", "cpu", "--batch-size", "32"],
        check=True, cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    evaluation = json.loads(evaluated.stdout[evaluated.stdout.index("{"):])

    epochs = {e["epoch"]: e for e in stats["epochs"]}
    for row in results:
        row.update({k: round(epochs[row["epoch"]][k], 4) for k in ("train_loss", "val_loss")
                    if k in epochs.get(row["epoch"], {})})
    test = read_questions(questions["test"])
    train_pairs = {(r.target["color"], r.target["shape"]) for r in read_questions(questions["train"])}
    heldout = {(r.target["color"], r.target["shape"]) for r in test} - train_pairs
    children = os.times()
    print(json.dumps({
        "test_accuracy": evaluation["accuracy"],
        "chance": round(1 / 9, 4),
        "heldout_pairs": len(heldout),
        "test_questions_on_heldout_pairs": sum((r.target["color"], r.target["shape"]) in heldout for r in test),
        "dataset": {"design": "civet preset (9x9 grid, areas of 3x3 cells), images at {0}x{0} px".format(args.size),
                    "path": str(data), "render_s": round(render_s, 1) if render_s else None,
                    **{s: len(read_questions(p)) for s, p in questions.items()}, "image_px": args.size},
        "model": {"architecture": args.family, "layout": args.layout, "parameters": parameters, "init": "random",
                  **{k: v for k, v in arch_for(args.family, args.size, args.layout).items()
                     if k in ("text", "vision", "config", "vision_position_std", "image_processor")}},
        "training": {"full": True, "lr": args.lr, "warmup_steps": args.warmup, "batch_size": args.batch_size,
                     "epochs": args.epochs,
                     "patience": args.patience, "stop_val_accuracy": args.stop_val_accuracy,
                     "epochs_run": len(stats["epochs"]),
                     "budget_cpu_min": args.budget_cpu_min, "best_epoch": stats.get("best_epoch"),
                     "stopped_early": stats.get("stopped_early"),
                     "train_wall_s": round(train_s, 1), "train_cpu_s": round(train_cpu_s, 1)},
        "threads": args.threads,
        "epochs_log": results,
        "evaluate": {k: evaluation[k] for k in ("accuracy", "unparsed") if k in evaluation},
        "wall_s": round(time.perf_counter() - started, 1),
        "cpu_s": round(time.process_time() - cpu_started + children.children_user + children.children_system, 1),
        "provenance": provenance(args.seed),
    }, indent=2))


if __name__ == "__main__":
    main()
