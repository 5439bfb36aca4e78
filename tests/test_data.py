"""vlm_train/data.py: question files -> examples (with the bad inputs), and the collator's labels, token by
token, on tiny checkpoints of each supported family."""
from __future__ import annotations

import json

import pytest

from blender_scenes.errors import InputError
from tests.question_sets import write_question_set, write_relation_set
from vlm_train.data import IGNORE_INDEX, ChatCollator, QuestionDataset, load_examples
from vlm_train.families import FAMILIES

# The assistant turn of each family's published template after its generation prompt: what the labels must
# decode to (special tokens kept). Idefics3/SmolVLM's "Assistant:" prompt leaves the answer's leading space here.
ANSWER_TURN = {
    "qwen2_5_vl": "{}<|im_end|>\n", "qwen2_vl": "{}<|im_end|>\n", "qwen3_vl": "{}<|im_end|>\n",
    "llava_onevision": "{}<|im_end|>\n", "internvl": "{}<|im_end|>\n",
    "llava_onevision1_5": "{}<|im_end|>\n",
    "idefics3": " {}<end_of_utterance>\n", "smolvlm": " {}<end_of_utterance>\n",
    "molmo2": "{}<|im_end|>",   # its template ends no final assistant turn: the collator appends the eos token
}


def test_examples_use_the_shared_prompt_and_resolve_images(tmp_path):
    from blender_scenes.prompts import build_prompt

    path = write_question_set(tmp_path, "train", ["top left", "center"])
    examples = load_examples(path)
    row = json.loads(path.read_text().splitlines()[1])
    assert [e.answer for e in examples] == ["top left", "center"]
    assert examples[1].prompt == build_prompt(row["question"], row["options"])
    assert examples[1].image == tmp_path / "images" / "train" / "0001.png"


def test_missing_image_is_one_line_input_error(tmp_path):
    path = write_question_set(tmp_path, "train", ["top left", "center"])
    (tmp_path / "images" / "train" / "0001.png").unlink()
    with pytest.raises(InputError) as err:
        load_examples(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "'image'" in message and "0001.png" in message


def test_empty_file_is_input_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(InputError, match="no question records"):
        load_examples(path)


def test_every_family_has_an_answer_turn_case():
    assert set(ANSWER_TURN) == set(FAMILIES)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_labels_cover_the_answer_turn_only(tmp_path, tiny_checkpoint, family):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if family == "smolvlm":
        pytest.importorskip("num2words")

    # different image sizes and answer lengths in one batch, so padding and image batching both matter
    answers = ["top left", "center", "bottom right"]
    path = write_question_set(tmp_path, "train", answers, sizes=((56, 56), (112, 84), (84, 140)))
    processor = AutoProcessor.from_pretrained(tiny_checkpoint(family))
    assert processor.chat_template == FAMILIES[family].chat_template, "the published template, unchanged"
    collator = ChatCollator(processor)
    rows = [QuestionDataset(load_examples(path))[i] for i in range(3)]
    batch = collator(rows)
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    tok = processor.tokenizer
    # the tokens images expand to (Molmo2 writes <im_patch>, <im_col>, ... in place of its <|image|> placeholder)
    is_image = torch.isin(ids, torch.tensor([t for t in processor.image_token_ids if t is not None]))
    assert is_image.any(dim=1).all(), "every row holds image tokens"
    assert mask[:, 0].all() and not mask.all(), "right padding: real tokens first, some rows padded"
    for i, answer in enumerate(answers):
        length = int(mask[i].sum())
        head, _ = collator.texts(rows[i]["prompt"], answer)
        prompt_ids = processor(text=[head], images=[[rows[i]["image"]]], return_tensors="pt")["input_ids"][0]
        start = len(prompt_ids)
        assert ids[i, :start].tolist() == prompt_ids.tolist()
        for t in range(ids.shape[1]):
            if start <= t < length:
                assert labels[i, t] == ids[i, t], f"answer token {t} must carry its id"
            else:
                assert labels[i, t] == IGNORE_INDEX, f"prompt/image/pad token {t} must be ignored"
        assert tok.decode(labels[i, start:length]) == ANSWER_TURN[family].format(answer)
        assert not (is_image[i] & (labels[i] != IGNORE_INDEX)).any()
    model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint(family))
    loss = model(**batch).loss
    assert torch.isfinite(loss)


def test_relation_records_train_unchanged(tmp_path, tiny_checkpoint):
    """Relation records (with an anchor) become examples through the same prompt builder and collator."""
    from transformers import AutoProcessor

    from blender_scenes.prompts import build_prompt

    path = write_relation_set(tmp_path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    examples = load_examples(path)
    assert [e.answer for e in examples] == ["left"] * 3 + ["above"] * 3
    assert all("anchor" in row for row in rows)
    assert examples[0].prompt == build_prompt(rows[0]["question"], rows[0]["options"])
    assert "Where is the dog relative to the cat?" in examples[0].prompt and examples[0].image.is_file()
    processor = AutoProcessor.from_pretrained(tiny_checkpoint("qwen2_5_vl"))
    collator = ChatCollator(processor)
    batch = collator([QuestionDataset(examples)[i] for i in (0, 3)])
    for i, answer in enumerate(("left", "above")):
        kept = batch["labels"][i][batch["labels"][i] != IGNORE_INDEX]
        assert processor.tokenizer.decode(kept) == ANSWER_TURN["qwen2_5_vl"].format(answer)
