"""Layer-wise probes (the study's layer analysis): where in the language model the answer to a position
question becomes linearly decodable. For each question record of one task, the hidden state at the final
prompt token (where the answer would be generated from) is taken at every layer, the embedding output and
each decoder layer's output, then `probe_fit.fit_probes` scores a linear probe per layer.

The model is loaded and its inputs built exactly as the runner does (`evaluation/runner.py`: the shared prompt
builder inside the model's chat template, image first, left padding). Hidden states are cached in the output
folder, so re-fitting with other folds or seeds does not run the model again. torch is imported inside the
function that runs the model, as in the runner; matplotlib inside the figure functions.
"""
from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from blender_scenes.errors import InputError
from blender_scenes.files import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from blender_scenes.prompts import chat_text, record_prompt
from blender_scenes.questions import QuestionRecord

from .backends.transformers_backend import (batches, check_model_source, check_prompts, load_model,
                                           load_run_processor, open_image, rank_device)
from .parallel import Part, barrier, leave, this_part
from .probe_fit import CI_METHOD, check_folds, fit_probes
from .rundir import shard_name
from .runner import RunSettings, check_settings, load_run_questions, run_record

PROBE, FIGURE, CACHE = "probe.json", "probe.png", "hidden_states.npz"
# settings that change the hidden states; the cache is reused only when all of them match
_CACHE_KEYS = ("model", "adapter", "questions", "task", "limit", "dtype", "weights")   # weights: see run_record


@dataclass(frozen=True)
class ProbeSettings(RunSettings):
    """A run's settings (model, adapter, questions, out, batch size, device, dtype, limit, trust_remote_code,
    max_image_pixels; max_new_tokens is unused: nothing is generated) and the probe's own."""
    task: str = "area9"
    folds: int = 3
    seed: int = 0


# --- inputs, checked before any model work -----------------------------------------------------------------

def probe_questions(settings: ProbeSettings) -> list[tuple[QuestionRecord, Path]]:
    """The first `limit` records of the task, each with its image (the runner's checks: ids unique, images
    exist); every answer needs at least `folds` records."""
    check_settings(settings)
    # the limit applies to the task's records, after filtering, so the runner reads the whole file
    items = load_run_questions(replace(settings, limit=None))
    items = [(record, image) for record, image in items if record.task == settings.task]
    if not items:
        raise InputError(f"{settings.questions}: field 'task': no records of task {settings.task!r} "
                         f"(expected at least one; see --task)")
    items = items[: settings.limit]
    check_folds([record.answer for record, _ in items], settings.folds, settings.questions)
    return items


def cache_key(settings: ProbeSettings) -> dict[str, Any]:
    """What the cached hidden states depend on (paths resolved like the runner's run.json)."""
    key = run_record(settings)
    return {k: key[k] for k in _CACHE_KEYS}


# --- hidden states -----------------------------------------------------------------------------------------

@dataclass
class HiddenStates:
    features: np.ndarray  # (records, layers, hidden), float32
    labels: list[str]
    ids: list[str]
    key: dict[str, Any]
    info: dict[str, Any]  # model_type, device, dtype, number of decoder layers


def read_cache(path: Path, key: dict[str, Any], items) -> HiddenStates | None:
    """The cached hidden states if they were made with the same settings for the same records, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            cached = HiddenStates(features=data["features"], labels=data["labels"].tolist(),
                                  ids=data["ids"].tolist(), key=json.loads(str(data["key"])),
                                  info=json.loads(str(data["info"])))
    except (OSError, ValueError, KeyError):
        return None  # unreadable or from another version: computed again and overwritten
    same_records = cached.ids == [r.id for r, _ in items] and cached.labels == [r.answer for r, _ in items]
    return cached if cached.key == key and same_records else None


def write_cache(path: Path, states: HiddenStates) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, features=states.features, labels=np.asarray(states.labels), ids=np.asarray(states.ids),
             key=json.dumps(states.key), info=json.dumps(states.info))
    atomic_write_bytes(path, buffer.getvalue())


def compute_hidden_states(settings: ProbeSettings, items, key: dict[str, Any], progress: bool) -> HiddenStates:
    """Run the model once over the records; keep every layer's hidden state at the last prompt token."""
    from vlm_train.checkpoint import pick_device, resolve_dtype

    config = check_model_source(settings.model, settings.adapter, settings.trust_remote_code)
    device = rank_device(pick_device(settings.device))
    dtype_name, dtype = resolve_dtype(settings.dtype, device.split(":")[0])
    processor = load_run_processor(settings.model, settings.adapter, settings.trust_remote_code)
    check_prompts(processor, config, [(f"{settings.questions}: question {r.id!r}", record_prompt(r)) for r, _ in items],
                  settings.model)   # before the weights load
    model, processor = load_model(settings.model, settings.adapter, device, dtype, settings.trust_remote_code,
                                  processor)
    chunks = []
    with tqdm(total=len(items), unit="q", desc="hidden states", disable=not progress, dynamic_ncols=True) as bar:
        for batch in batches(items, settings.batch_size):
            images = [open_image(path, settings.questions) for _, path in batch]
            chunks.append(last_token_states(model, processor, [record_prompt(r) for r, _ in batch], images))
            bar.update(len(batch))
    config = model.config
    info = {"model_type": config.model_type, "decoder_layers": config.get_text_config().num_hidden_layers,
            "device": device.split(":")[0], "dtype": dtype_name}
    return HiddenStates(features=np.concatenate(chunks), labels=[r.answer for r, _ in items],
                        ids=[r.id for r, _ in items], key=key, info=info)


def gather_hidden_states(settings: ProbeSettings, items, key: dict[str, Any], part: Part,
                         progress: bool) -> HiddenStates | None:
    """This rank's records (every N-th from its rank on) to a part file; rank 0 waits for every rank's, puts the
    rows back in record order and returns the whole (other ranks return None). With --batch-size 1 the states
    are those of one process bit for bit; in batches, padding to another batch's longest prompt can move them
    by float rounding."""
    mine = compute_hidden_states(settings, items[part.k::part.n], key, progress and part.k == 0)
    write_cache(out_part(settings, part.k, part.n), mine)
    barrier(part)
    if part.k != 0:
        return None
    pieces = [np.load(out_part(settings, k, part.n), allow_pickle=False)["features"] for k in range(part.n)]
    features = np.empty((len(items), *mine.features.shape[1:]), dtype=mine.features.dtype)
    for k, piece in enumerate(pieces):
        features[k::part.n] = piece
    for k in range(part.n):
        out_part(settings, k, part.n).unlink()
    return HiddenStates(features=features, labels=[r.answer for r, _ in items], ids=[r.id for r, _ in items],
                        key=key, info=mine.info)


def out_part(settings: ProbeSettings, k: int, n: int) -> Path:
    return Path(settings.out) / f"hidden_states.{shard_name(k, n)}.npz"


def last_token_states(model, processor, prompts: list[str], images: list) -> np.ndarray:
    """(batch, layers, hidden): the inputs built as the runner's `generate_answers` builds them; with left
    padding the last position is every row's final prompt token, the one the first answer token comes from."""
    import torch

    texts = [chat_text(processor, p) for p in prompts]
    inputs = processor(text=texts, images=[[im] for im in images], return_tensors="pt", padding=True)
    inputs = inputs.to(model.device, dtype=model.dtype)
    with torch.inference_mode():
        # logits_to_keep=1: the vocabulary projection of every position would be wasted work
        output = model(**inputs, output_hidden_states=True, logits_to_keep=1)
    return torch.stack([h[:, -1, :] for h in output.hidden_states], dim=1).float().cpu().numpy()


# --- the probe ---------------------------------------------------------------------------------------------

def run_probe(settings: ProbeSettings, progress: bool = True) -> dict[str, Any] | None:
    """Hidden states (cached in `out`), a probe per layer, probe.json and probe.png; returns probe.json. Under
    torchrun each rank computes the hidden states of every N-th record and rank 0 gathers them, fits and
    writes (the other ranks return None)."""
    items = probe_questions(settings)
    part = this_part(None)
    out = Path(settings.out)
    key = cache_key(settings)
    states = read_cache(out / CACHE, key, items)
    reused = states is not None
    try:
        if states is None:
            states = (gather_hidden_states(settings, items, key, part, progress) if part.distributed
                      else compute_hidden_states(settings, items, key, progress))
            if states is None:
                return None
            write_cache(out / CACHE, states)
        elif part.k != 0:
            return None
    finally:
        leave(part)
    fit = fit_probes(states.features, states.labels, settings.folds, settings.seed)
    result = {"task": settings.task, "n": len(states.labels), "chance": round(fit.chance, 4),
              "layers": [s.as_json() for s in fit.layers], "control": [s.as_json() for s in fit.control],
              **key, "trust_remote_code": settings.trust_remote_code, "seed": settings.seed,
              "folds": settings.folds, "ci_method": CI_METHOD,
              "control_method": "labels permuted with the seed, same folds", "unconverged_fits": fit.unconverged,
              "answers": dict(sorted(Counter(states.labels).items())), **states.info,
              "hidden_states": "cached" if reused else "computed"}
    atomic_write_bytes(out / FIGURE, draw([result], f"{Path(settings.model).name}: {settings.task}"))
    atomic_write_json(out / PROBE, result, indent=2)
    return result


# --- figures and comparisons -------------------------------------------------------------------------------

def draw(results: list[dict], title: str, names: list[str] | None = None) -> bytes:
    """PNG bytes: accuracy by layer with its interval, the shuffled-label control (dotted), chance (dashed)."""
    from blender_scenes.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for index, result in enumerate(results):
        colour = f"C{index}"
        name = names[index] if names else "probe"
        layers = [s["layer"] for s in result["layers"]]
        ax.plot(layers, [s["accuracy"] for s in result["layers"]], "o-", color=colour, label=name)
        ax.fill_between(layers, *zip(*(s["ci"] for s in result["layers"])), color=colour, alpha=0.15)
        ax.plot(layers, [s["accuracy"] for s in result["control"]], ":", color=colour,
                label=f"{name}, shuffled labels")
    for chance in sorted({r["chance"] for r in results}):
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance {chance:.2f}")
    ax.xaxis.get_major_locator().set_params(integer=True)  # layers are whole numbers
    ax.set(xlabel="layer (0 = embeddings)", ylabel="probe accuracy (out of fold)", ylim=(0, 1.02), title=title)
    ax.legend(fontsize=7, loc="best")
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()


def compare_probes(probe_dirs: list[str], out: str) -> dict[str, Any]:
    """Several probe results on one figure (compare.png), with compare.json and compare.md tables."""
    if len(probe_dirs) < 2:
        raise InputError("--compare: expected at least two probe folders")
    results = [read_json(Path(d) / PROBE, "a probe result written by `scenes2real probe`") for d in probe_dirs]
    names = [Path(d).name for d in probe_dirs]
    rows = [summary_row(name, d, r) for name, d, r in zip(names, probe_dirs, results)]
    tasks = ", ".join(sorted({r["task"] for r in results}))
    atomic_write_bytes(Path(out) / "compare.png", draw(results, f"probes: {tasks}", names))
    table = {"runs": rows}
    atomic_write_json(Path(out) / "compare.json", table, indent=2)
    atomic_write_text(Path(out) / "compare.md", markdown(rows))
    return table


def summary_row(name: str, folder: str, result: dict) -> dict[str, Any]:
    try:
        best = max(result["layers"], key=lambda s: s["accuracy"])
        return {"name": name, "folder": str(folder), "model": result["model"], "adapter": result["adapter"],
                "task": result["task"], "n": result["n"], "chance": result["chance"], "best_layer": best["layer"],
                "best_accuracy": best["accuracy"], "best_ci": best["ci"],
                "last_layer_accuracy": result["layers"][-1]["accuracy"],
                "control_max": max(s["accuracy"] for s in result["control"])}
    except (KeyError, TypeError, ValueError, IndexError):
        raise InputError(f"{Path(folder) / PROBE}: field 'layers': expected a probe result written by "
                         f"`scenes2real probe`") from None


def markdown(rows: list[dict]) -> str:
    lines = ["| run | task | n | chance | best layer | best accuracy (95% CI) | last layer | control max |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['task']} | {r['n']} | {r['chance']:.3f} | {r['best_layer']} | "
                     f"{r['best_accuracy']:.3f} ({r['best_ci'][0]:.3f}-{r['best_ci'][1]:.3f}) | "
                     f"{r['last_layer_accuracy']:.3f} | {r['control_max']:.3f} |")
    return "\n".join(lines) + "\n"
