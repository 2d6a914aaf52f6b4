"""A scripted OpenAI-compatible model on loopback, for driving the real Copilot CLI offline.

The Copilot CLI in bring-your-own-key mode sends OpenAI chat completions to
`{base_url}/chat/completions`; this server answers each one from a script (a function of the
request body that returns text or tool calls), as a JSON body or as server-sent events when the
request asks for `"stream": true`, and records every request body it received.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Reply:
    """One model turn: text, or tool calls as (name, arguments) pairs."""

    text: str = ""
    tool_calls: list[tuple[str, dict]] = field(default_factory=list)
    status: int = 200  # anything else answers with an OpenAI-style error body


@dataclass
class Request:
    at: float  # time.monotonic() when it arrived
    path: str
    body: dict
    headers: dict = field(default_factory=dict)  # names in lower case
    reply: Reply | None = None  # what the script answered

    def messages(self) -> list[dict]:
        return self.body.get("messages", [])

    def last_user_text(self) -> str:
        users = [m for m in self.messages() if m.get("role") == "user"]
        return content_text(users[-1]) if users else ""

    def tool_results(self) -> list[str]:
        return [content_text(m) for m in self.messages() if m.get("role") == "tool"]

    def tool_names(self) -> list[str]:
        return [t.get("function", {}).get("name", "") for t in self.body.get("tools", [])]


def content_text(message: dict) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def text(words: str) -> Callable[[Request], Reply]:
    return lambda request: Reply(text=words)


class ScriptedModel:
    """`POST /v1/chat/completions` answered by `script(request) -> Reply`; every request kept."""

    def __init__(self, script: Callable[[Request], Reply] = text("ok")) -> None:
        self.script = script
        self.requests: list[Request] = []
        self.arrived = threading.Condition()
        model = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet: tests read `requests`
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self.send_json(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
                else:
                    self.send_json(404, {"error": {"message": f"no such path {self.path}"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"unparsed": raw.decode("utf-8", "replace")}
                request = Request(at=time.monotonic(), path=self.path, body=body, headers={k.lower(): v for k, v in self.headers.items()})
                known = self.path.rstrip("/").endswith("/chat/completions")
                request.reply = model.script(request) if known else Reply(status=404)
                with model.arrived:
                    model.requests.append(request)
                    model.arrived.notify_all()
                if not known:
                    self.send_json(404, {"error": {"message": f"no such path {self.path}"}})
                    return
                reply = request.reply
                if reply.status != 200:
                    self.send_json(reply.status, {"error": {"message": reply.text or "scripted failure",
                                                            "type": "scripted", "code": str(reply.status)}})
                elif body.get("stream"):
                    self.send_stream(body, reply)
                else:
                    self.send_json(200, completion(body, reply))

            def send_json(self, status: int, data: dict) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def send_stream(self, body: dict, reply: Reply) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                for chunk in chunks(body, reply):
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "ScriptedModel":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, predicate: Callable[[Request], bool], timeout: float = 30) -> Request:
        """Block until a request matching `predicate` has arrived; return it."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                found = next((r for r in self.requests if predicate(r)), None)
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [r.last_user_text()[:80] for r in self.requests]
                    raise AssertionError(f"no matching model request within {timeout}s; got {seen}")
                self.arrived.wait(left)


def tool_call_list(reply: Reply) -> list[dict]:
    return [
        {"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
         "function": {"name": name, "arguments": json.dumps(arguments)}}
        for name, arguments in reply.tool_calls
    ]


def completion(body: dict, reply: Reply) -> dict:
    message: dict = {"role": "assistant", "content": reply.text or None}
    if reply.tool_calls:
        message["tool_calls"] = tool_call_list(reply)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "scripted"),
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def chunks(body: dict, reply: Reply) -> list[dict]:
    base = {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": body.get("model", "scripted")}
    out = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": reply.text or ""},
                                 "finish_reason": None}]}]
    for i, call in enumerate(tool_call_list(reply)):
        out.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, **call}]},
                                         "finish_reason": None}]})
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
    return out
