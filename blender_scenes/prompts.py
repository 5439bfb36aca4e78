"""The prompt contract, in one place: the prompt templates, the builder that fills them from a question
record, and the chat messages around the prompt (user turn with the image first, the assistant's answer,
the processor's chat template for generation). Training, evaluation, export and the benches all call these,
so what a model is trained on is what it is asked.

Pure: no bpy, no torch, no transformers (a processor is only passed in), and nothing of ours but the record
type for annotations, so any module can import it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .questions import QuestionRecord

DEFAULT_TEMPLATE = "Answer using as few words as possible. {question} Choose from [{options}]."
DEFAULT_OPEN_TEMPLATE = "Answer using as few words as possible. {question}"


def template_fields(options: list[str], template: str, open_template: str) -> dict[str, str]:
    """What a record stores about its prompt template: nothing for the defaults (so default records stay
    as they were), else the one template its prompt is built from."""
    used, default = (template, DEFAULT_TEMPLATE) if options else (open_template, DEFAULT_OPEN_TEMPLATE)
    return {} if used == default else {"template": used}


def build_prompt(question: str, options: list[str], template: str = DEFAULT_TEMPLATE,
                 open_template: str = DEFAULT_OPEN_TEMPLATE) -> str:
    """The text a model sees: the template filled with the question and its options (if any)."""
    if options:
        return template.format(question=question, options=", ".join(options))
    return open_template.format(question=question)


def record_prompt(record: QuestionRecord) -> str:
    """The prompt of a record: its own template if it stores one (a design's `questions.template`), else
    the default. Training, evaluation and export all call this."""
    if record.template is None:
        return build_prompt(record.question, record.options)
    return build_prompt(record.question, record.options, record.template, record.template)


def user_turn(prompt: str) -> list[dict[str, Any]]:
    """The conversation up to the question: one user turn with the image first, then the prompt."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


def chat_turns(prompt: str, answer: str) -> list[dict[str, Any]]:
    """The whole conversation a model is trained on: the user turn, then the assistant's answer."""
    return user_turn(prompt) + [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]


def chat_text(processor, prompt: str) -> str:
    """The user turn in the processor's own chat template, ending with the assistant header: the text a
    model continues from, in evaluation and to locate the answer in training."""
    return processor.apply_chat_template(user_turn(prompt), add_generation_prompt=True, tokenize=False)
