"""The `openai` backend: any OpenAI-compatible chat-completions server (vLLM, SGLang, lmdeploy, `transformers
serve`, hosted APIs) answers the questions.

Each question is one chat request: one user turn with the image first, as a data URL of the image file's own
bytes (never re-encoded: the server decodes what the local backend would), then the prompt our builder makes;
greedy (`temperature 0`), `max_tokens` = --max-new-tokens. The server applies the model's chat template, as
the local backend does. The `openai` client retries 408, 409, 429, 5xx, timeouts and dropped connections with
exponential backoff (honouring Retry-After), `--max-retries` times; a question that still fails becomes an
error row (kept, counted, retried by the next run). Every other refusal (401/403 key, 404 model, a 4xx that
names the request's problem) stops the run with one line: no retry can fix it. Requests run `--concurrency` at
a time in daemon threads (the client's connection pool is shared and thread-safe).

The key comes from the environment variable `--api-key-env` names; run.json records that name, never the key.
"""
from __future__ import annotations

import base64
import os
import queue
import threading
from pathlib import Path
from typing import Any, Iterator

from PIL import Image

from blender_scenes.errors import InputError

from ..imagefiles import MEDIA_TYPES, image_kind
from . import Answer, Question

NO_KEY = "EMPTY"   # what a server started without a key accepts (vLLM's documented placeholder)
SHOWN_MODELS = 8   # served models named in the error for a model the server does not serve


class OpenAIBackend:
    def __init__(self, settings):
        try:
            import openai
        except ImportError:
            raise InputError("--backend openai: the openai package is not installed (pip install "
                             "'scenes2real[openai]')") from None
        self.settings = settings
        if not settings.base_url:
            raise InputError("--backend openai: expected --base-url (the server's URL, e.g. http://localhost:8000/v1)")
        self.key = api_key(settings.api_key_env)
        self.client = openai.OpenAI(base_url=settings.base_url, api_key=self.key, timeout=settings.request_timeout,
                                    max_retries=settings.max_retries)
        self.listed: dict[str, Any] | None = None

    # --- before any question -----------------------------------------------------------------------------

    def check(self, todo: list[Question]) -> None:
        """The server answers, accepts the key and serves the model (when it lists its models)."""
        import openai

        try:
            served = self.client.with_options(max_retries=0).models.list().data
        except openai.NotFoundError:
            return   # a server without GET /models: the first question finds out
        except openai.APIError as err:
            raise self.fatal(err) from None
        names = [m.id for m in served]
        if self.settings.model not in names:
            shown = ", ".join(names[:SHOWN_MODELS]) + (", ..." if len(names) > SHOWN_MODELS else "")
            raise InputError(f"--model {self.settings.model}: not served by {self.settings.base_url} "
                             f"(it serves: {shown or 'nothing'}); expected one of its model names")
        self.listed = served[names.index(self.settings.model)].model_dump(exclude_none=True)

    def start(self) -> dict[str, Any]:
        import openai

        s = self.settings
        return {"served_model": self.listed, "versions": {"openai": openai.__version__},
                "client": {"concurrency": s.concurrency, "request_timeout": s.request_timeout,
                           "max_retries": s.max_retries, "api_key_env": s.api_key_env},
                "generation": {"temperature": 0, "max_tokens": s.max_new_tokens}}

    # --- the questions -----------------------------------------------------------------------------------

    def answer(self, todo: list[Question]) -> Iterator[list[Answer]]:
        """`--concurrency` daemon threads take questions from a queue: a fatal answer or a signal ends the run at
        once, without waiting for the requests still in flight (they would hold the exit for up to their
        timeout times their retries)."""
        questions: queue.SimpleQueue = queue.SimpleQueue()
        results: queue.SimpleQueue = queue.SimpleQueue()
        for question in todo:
            questions.put(question)
        stop = threading.Event()

        def work() -> None:
            while not stop.is_set():
                try:
                    question = questions.get_nowait()
                except queue.Empty:
                    return
                try:
                    results.put(self.ask(question))
                except BaseException as err:   # handed to the main thread, which stops the run
                    results.put(err)

        for index in range(min(self.settings.concurrency, len(todo))):
            threading.Thread(target=work, name=f"request-{index}", daemon=True).start()
        received = 0
        try:
            while received < len(todo):
                ready = [results.get()]
                while not results.empty():   # write what is ready together
                    ready.append(results.get())
                received += len(ready)
                for item in ready:
                    if isinstance(item, BaseException):
                        raise item
                yield ready
        finally:
            stop.set()

    def ask(self, question: Question) -> Answer:
        import openai

        try:
            response = self.client.chat.completions.create(
                model=self.settings.model, messages=messages(question), temperature=0,
                max_tokens=self.settings.max_new_tokens)
        except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError,
                openai.ConflictError) as err:   # retried by the client, and still failing
            return Answer(question, None, error=one_line(err))
        except openai.APIStatusError as err:
            if err.status_code == 408:
                return Answer(question, None, error=one_line(err))
            raise self.fatal(err, question) from None
        choices = response.choices or []
        if not choices:
            return Answer(question, None, error="the server's response has no choices")
        return Answer(question, (choices[0].message.content or "").strip())

    def fatal(self, err, question: Question | None = None) -> InputError:
        """One line for a failure no retry can fix."""
        import openai

        s = self.settings
        where = f"--base-url {s.base_url}" + (f": question {question.record.id!r}" if question else "")
        if isinstance(err, openai.APIConnectionError):
            return InputError(f"{where}: server unreachable ({one_line(err)}); expected a running OpenAI-compatible "
                              f"server at this URL (see --request-timeout)")
        if isinstance(err, (openai.AuthenticationError, openai.PermissionDeniedError)):
            source = f"the key from ${s.api_key_env}" if s.api_key_env else "no key (pass --api-key-env VAR)"
            return InputError(f"{where}: {err.status_code} {server_message(err)}: the server refused {source}")
        if isinstance(err, openai.NotFoundError):
            return InputError(f"{where}: 404 {server_message(err)} (expected --model {s.model} to be a model the "
                              f"server serves, and --base-url to end where its /chat/completions is, e.g. /v1)")
        if isinstance(err, openai.APIStatusError):
            return InputError(f"{where}: the server answered {err.status_code}: {server_message(err)}")
        return InputError(f"{where}: {one_line(err)}")


def api_key(variable: str | None) -> str:
    if variable is None:
        return NO_KEY
    value = os.environ.get(variable)
    if not value:
        raise InputError(f"--api-key-env {variable}: the variable is not set (expected the name of an environment "
                         f"variable that holds the server's key)")
    return value


def messages(question: Question) -> list[dict[str, Any]]:
    """The user turn of `blender_scenes.prompts.user_turn` in the chat-completions format."""
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(question.image)}},
                                         {"type": "text", "text": question.prompt}]}]


def data_url(path: Path) -> str:
    """The file's own bytes as a data URL, its media type from its header (the runner has checked it decodes)."""
    data = path.read_bytes()
    media_type = MEDIA_TYPES.get(image_kind(data))   # from the first bytes; any other format asks PIL
    if media_type is None:
        with Image.open(path) as image:
            media_type = Image.MIME.get(image.format or "", "application/octet-stream")
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def server_message(err) -> str:
    """The server's own words: the `message` (OpenAI, vLLM), `detail` (FastAPI) or `error` of its JSON body."""
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            text = inner.get("message") or inner.get("detail")
        else:
            text = inner
        text = text or body.get("detail") or body.get("message")
        if text:
            return " ".join(str(text).split())
    return one_line(err)


def one_line(err) -> str:
    return " ".join(str(err).split()) or type(err).__name__
