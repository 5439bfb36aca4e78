"""Where position becomes decodable in `bench/learn.py`'s from-scratch model, and why its earlier design stayed at
chance (not a test).

The model of `bench/learn.py` (same architecture, seed and data: the civet preset at 126 px) is probed at
initialisation, and optionally after training (`--trained DIR`, e.g. `runs/learn-bench/run/best`); the earlier
design (`--layout merged-cells` in bench/learn.py) is probed at initialisation beside it:
- `answer_position`: `scenes2real probe` (the study's layer-wise probe: standardised linear SVM, stratified
  3-fold) on the hidden state at the final prompt token, where the answer is generated from, per layer;
- `image_tokens`: the same probe on the language model's input embeddings of the image tokens (the connector's
  output, concatenated): what the vision side hands over;
- `object_contrast`: how far the object's image token (the token of its answer area) lies from that token's
  mean over images whose object is elsewhere, relative to that mean's norm; and `object_direction_cosine`, the
  mean cosine between those offsets across images. At initialisation the language model can only find the
  object's token by such an offset: with the earlier design it was ~0.2 of the token, in directions that
  differ by colour, shape and slot, and training never left the chance plateau; with one patch per area and
  uncentred pixels it is about the size of the token (see `idefics3_arch` in bench/learn.py);
- `relative_spread`: per layer, how much the final prompt token's state varies across images relative to its
  mean (mean ||h - mean h|| / ||mean h||).

    python bench/learn_diagnosis.py                     # render (or --dataset DIR), build, probe; print JSON
    python bench/learn_diagnosis.py --trained runs/learn-bench/run/best

Prints one JSON object with provenance; kept in bench/results/learn-diagnosis.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def probe_cli(model: Path, questions: Path, out: Path, limit: int, seed: int) -> dict:
    subprocess.run([sys.executable, "-m", "scenes2real", "probe", "--model", str(model), "--questions",
                    str(questions), "--out", str(out), "--limit", str(limit), "--seed", str(seed),
                    "--device", "cpu", "--dtype", "fp32", "--batch-size", "32"],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    result = json.loads((out / "probe.json").read_text())
    return {"chance": result["chance"], "layers": result["layers"],
            "control_mean": round(sum(c["accuracy"] for c in result["control"]) / len(result["control"]), 4)}


def image_side(model_dir: Path, questions: Path, limit: int, seed: int) -> dict:
    """The image tokens' input embeddings probed, and the relative spread of the final prompt token per layer."""
    import numpy as np
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from blender_scenes.prompts import chat_text, record_prompt
    from blender_scenes.questions import read_questions, resolve_image
    from evaluation.probe_fit import fit_probes
    from evaluation.backends.transformers_backend import open_image

    processor = AutoProcessor.from_pretrained(model_dir)
    processor.tokenizer.padding_side = "left"
    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    records = [r for r in read_questions(questions) if r.task == "area9"][:limit]
    image_rows, last_rows = [], []
    for start in range(0, len(records), 32):
        chunk = records[start:start + 32]
        inputs = processor(text=[chat_text(processor, record_prompt(r)) for r in chunk],
                           images=[[open_image(resolve_image(r, questions), str(questions))] for r in chunk],
                           padding=True, return_tensors="pt")
        with torch.no_grad():
            states = model(**inputs, output_hidden_states=True).hidden_states
        is_image = inputs["input_ids"] == processor.image_token_id
        image_rows.append(states[0][is_image].reshape(len(chunk), -1).float().numpy())
        last_rows.append(torch.stack([s[:, -1] for s in states], 1).float().numpy())
    image, last = np.concatenate(image_rows), np.concatenate(last_rows)
    labels = [r.answer for r in records]
    contrast, cosine = object_offsets(image.reshape(len(records), 9, -1), records)
    fit = fit_probes(image[:, None, :], labels, folds=3, seed=seed)
    mean = last.mean(0)
    spread = np.linalg.norm(last - mean, axis=2).mean(0) / np.linalg.norm(mean, axis=1)
    return {"image_tokens": {"accuracy": round(fit.layers[0].accuracy, 4),
                             "ci": [round(v, 4) for v in fit.layers[0].ci],
                             "control": round(fit.control[0].accuracy, 4), "features": int(image.shape[1])},
            "object_contrast": round(contrast, 4), "object_direction_cosine": round(cosine, 4),
            "relative_spread": [round(float(v), 4) for v in spread]}


def object_offsets(tokens, records) -> tuple[float, float]:
    """The object's token (its answer area's, row-major over the 3x3 areas) against that token's mean over the
    images whose object lies in another area: mean offset norm / mean's norm, and the mean pairwise cosine of
    the offsets."""
    import numpy as np

    area = np.array([(r.target["cell"][0] // 3) * 3 + r.target["cell"][1] // 3 for r in records])
    offsets, ratios = [], []
    for k in range(9):
        empty = tokens[area != k, k].mean(0)
        offset = tokens[area == k, k] - empty
        offsets.append(offset)
        ratios.append(np.linalg.norm(offset, axis=1) / np.linalg.norm(empty))
    unit = np.concatenate(offsets)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    return float(np.concatenate(ratios).mean()), float((unit @ unit.T).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "learn-diagnosis")
    parser.add_argument("--dataset", type=Path, help="a dataset rendered by bench/learn.py (else rendered here)")
    parser.add_argument("--trained", type=Path, help="a checkpoint trained by bench/learn.py to probe as well")
    parser.add_argument("--size", type=int, default=126)
    parser.add_argument("--limit", type=int, default=648, help="test questions probed (held-out pairs)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import learn
    from bench.provenance import provenance

    args.work.mkdir(parents=True, exist_ok=True)
    data = args.dataset or learn.render(args.work, args.size, args.seed)[0]
    questions = data / "questions" / "test.jsonl"
    model, earlier = args.work / "model-init", args.work / "model-init-merged-cells"
    parameters = learn.build_model(model, "idefics3", args.seed, args.size)
    learn.build_model(earlier, "idefics3", args.seed, args.size, "merged-cells")
    models = {"init": model, **({"trained": args.trained} if args.trained else {}), "merged_cells_init": earlier}
    out = {"what": "bench/learn.py's model probed (and its earlier merged-cells design at initialisation): final prompt token per layer, image tokens, object-token contrast, relative spread",
           "dataset": str(data), "questions": str(questions), "limit": args.limit, "parameters": parameters,
           "chance": round(1 / 9, 4)}
    for name, path in models.items():
        out[name] = {"answer_position": probe_cli(path, questions, args.work / f"probe-{name}", args.limit,
                                                  args.seed),
                     **image_side(path, questions, args.limit, args.seed)}
    out["provenance"] = provenance(args.seed)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
