"""The prompt contract, in one place: the prompt templates, the builder that fills them from a question
record, and the chat messages around the prompt (user turn with the image first, the assistant's answer,
the processor's chat template for generation). Training, evaluation, export and the benches all call these,
so what a model is trained on is what it is asked.

Pure: no bpy, no torch, no transformers (a processor is only passed in), and nothing of ours, so any module
can import it (the question records do, to check a record's template when it is read).
"""
from __future__ import annotations

import string
from typing import Any, Protocol

DEFAULT_TEMPLATE = "Answer using as few words as possible. {question} Choose from [{options}]."
DEFAULT_OPEN_TEMPLATE = "Answer using as few words as possible. {question}"

#: the placeholders `build_prompt` fills: a template for questions with options must use both, an open
#: template (no options) only and always {question}; each is written plain, as `{question}`
TEMPLATE_FIELDS = ("question", "options")
OPEN_TEMPLATE_FIELDS = ("question",)


def template_problem(template: str, with_options: bool) -> str | None:
    """What is wrong with a prompt template (one line, without the file and field: the caller names them), or
    None when `build_prompt` can fill it. Checked where designs and question files are read, so a bad template
    never reaches training or a loaded model."""
    fields = TEMPLATE_FIELDS if with_options else OPEN_TEMPLATE_FIELDS
    allowed = " and ".join(f"{{{f}}}" for f in fields)
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as err:   # "Single '{' encountered in format string"
        return f"malformed braces ({err}); expected placeholders {allowed}, a literal brace written {{{{ or }}}}"
    used = set()
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in fields or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            return f"unknown placeholder {shown[:60]!r}; expected only {allowed} (a literal brace written {{{{ or }}}})"
        used.add(name)
    if used != set(fields):
        return f"must contain {allowed}"
    return None


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


class _Record(Protocol):
    """What a prompt is built from: a question record (`questions.QuestionRecord`) has these fields."""
    question: str
    options: list[str]
    template: str | None


def record_prompt(record: _Record) -> str:
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
