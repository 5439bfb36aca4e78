"""Real HTTP on loopback for the tests of the `openai` backend: a free port, and `FakeOpenAI`, a small
OpenAI-compatible server of our own (a `ThreadingHTTPServer` in a thread) that answers GET /v1/models and
POST /v1/chat/completions, records every request it receives, and can be told which statuses to answer.

    with FakeOpenAI() as fake:          # fake.url == "http://127.0.0.1:PORT/v1"
        fake.statuses = [429, 429]      # the next two chat requests get 429, later ones 200
        fake.fail_texts["purple cube"] = 500   # every chat request whose prompt contains this gets 500
        fake.always = 401               # every request, /models included
        fake.error_body = {...}         # the JSON body of the error answers (else an OpenAI-style error)
"""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    """A loopback port nothing listens on (the OS picks it; nothing is bound to it when this returns)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeOpenAI:
    def __init__(self, model: str = "fake-model", content: str = "top left"):
        self.model = model
        self.content = content
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []   # every request: method, path, headers, body (JSON or None)
        self.statuses: list[int] = []               # the next chat requests' statuses, in order, then 200
        self.fail_texts: dict[str, int] = {}        # prompt substring -> the status every such chat request gets
        self.always: int | None = None              # a status for every request, /models included
        self.error_body: dict[str, Any] | None = None
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # --- what was received ---------------------------------------------------------------------------------

    def chat_requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == "/v1/chat/completions"]

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()

    @staticmethod
    def prompt(request: dict[str, Any]) -> str:
        """The text parts of a chat request's messages, joined."""
        texts = []
        for message in (request["body"] or {}).get("messages", []):
            content = message.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                texts += [part.get("text", "") for part in content if part.get("type") == "text"]
        return "\n".join(texts)

    # --- what to answer ------------------------------------------------------------------------------------

    def decide(self, request: dict[str, Any]) -> int:
        with self.lock:
            self.requests.append(request)
            if self.always is not None:
                return self.always
            if request["path"] != "/v1/chat/completions":
                return 200
            text = self.prompt(request)
            for needle, status in self.fail_texts.items():
                if needle in text:
                    return status
            return self.statuses.pop(0) if self.statuses else 200

    def error(self, status: int) -> dict[str, Any]:
        if self.error_body is not None:
            return self.error_body
        return {"error": {"message": f"fake server error {status}", "type": "fake_error", "code": status}}

    def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "test"}]}

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", self.model),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": self.content}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}

    # --- the server ----------------------------------------------------------------------------------------

    def __enter__(self) -> "FakeOpenAI":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"   # keep-alive, as real servers answer

            def log_message(self, *args):   # quiet
                pass

            def reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

            def record(self, body: Any) -> dict[str, Any]:
                return {"method": self.command, "path": self.path.split("?")[0],
                        "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}

            def do_GET(self):
                request = self.record(None)
                status = fake.decide(request)
                if status != 200:
                    return self.reply(status, fake.error(status))
                if request["path"] == "/v1/models":
                    return self.reply(200, fake.models())
                return self.reply(404, {"error": {"message": f"no route {request['path']}"}})

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                request = self.record(body)
                status = fake.decide(request)
                if status != 200:
                    return self.reply(status, fake.error(status))
                if request["path"] != "/v1/chat/completions" or not isinstance(body, dict):
                    return self.reply(404, {"error": {"message": f"no route {request['path']}"}})
                return self.reply(200, fake.completion(body))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="fake-openai", daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None, "use FakeOpenAI as a context manager"
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=10)
