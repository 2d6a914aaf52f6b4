"""The real Codex CLI, with its model replaced by a scripted Responses API on loopback.

`ScriptedResponses` answers `POST /v1/responses` (server-sent events, as Codex asks) with scripted
output items (text, or function calls, tempo's tools under their `mcp__claude_tempo` namespace) and
records every request body: what the model was shown is in those bodies. `codex_home()` makes a
throwaway CODEX_HOME whose custom provider points at it and which trusts the project (so the
project's .codex/ loads); `run_exec()` runs `codex exec` headless.

The binary is always ROOT/node_modules/.bin/codex (`npm ci` installs the pinned @openai/codex),
never one on PATH.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
CODEX = ROOT / "node_modules" / ".bin" / "codex"
MODEL = "scripted"  # unknown to Codex's model catalog: MCP tools are listed inline (not behind tool_search)
NAMESPACE = "mcp__claude_tempo"  # how Codex 0.171 lists tempo's tools to the model (the server name's "-" becomes "_")


def codex_binary() -> Path:
    """The project's pinned Codex CLI; fail clearly if `npm ci` has not installed it."""
    if not CODEX.exists():
        raise AssertionError(f"{CODEX} is missing: run `npm ci` in {ROOT} to install the pinned Codex CLI")
    return CODEX


# -- the scripted model ------------------------------------------------------


def text(value: str) -> dict:
    return {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": value, "annotations": []}]}


def call(name: str, arguments: dict | None = None, namespace: str = NAMESPACE) -> dict:
    """A function call; tempo's tools need their namespace (a flat `mcp__claude_tempo__cue` is "unsupported call")."""
    item = {"type": "function_call", "name": name, "arguments": json.dumps(arguments or {})}
    return {**item, "namespace": namespace} if namespace else item


def shell(cmd: str) -> dict:
    return call("exec_command", {"cmd": cmd}, namespace="")


def inputs(body: dict) -> list[str]:
    """The texts of the request's input items (messages, tool outputs), in order."""
    texts = []
    for item in body.get("input") or []:
        content = item.get("content")
        if isinstance(content, list):
            texts.append("\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict)))
        elif item.get("output") is not None:
            texts.append(str(item["output"]))
    return texts


def shown(body: dict) -> str:
    return "\n".join(inputs(body))


def tools(body: dict) -> list[str]:
    """The tools offered, namespaced ones as `namespace__name`."""
    names = []
    for t in body.get("tools") or []:
        if t.get("type") == "namespace":
            names += [f"{t['name']}__{s.get('name')}" for s in t.get("tools", [])]
        else:
            names.append(t.get("name") or t.get("type", ""))
    return names


def outputs_of(body: dict, name: str) -> list[str]:
    """What the calls of `name` so far returned (the function_call_output items answering them)."""
    ids = {i.get("call_id") for i in body.get("input") or [] if i.get("type") == "function_call" and i.get("name") == name}
    return [str(i.get("output")) for i in body.get("input") or [] if i.get("type") == "function_call_output" and i.get("call_id") in ids]


class ScriptedResponses:
    """An OpenAI Responses API stand-in: `reply(body)` returns the output items of each answer."""

    def __init__(self, reply: Callable[[dict], list[dict]] | None = None) -> None:
        self.reply = reply or (lambda body: [text("ok")])
        self.bodies: list[dict] = []
        self.times: list[float] = []  # time.monotonic() each body arrived
        self.lock = threading.Lock()
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # the model list: none (Codex then uses its fallback metadata)
                self.send(200 if self.path.endswith("/models") else 404, b'{"models":[]}', "application/json")

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if not self.path.endswith("/responses"):
                    self.send(404, b"{}", "application/json")
                    return
                with scripted.lock:
                    scripted.bodies.append(body)
                    scripted.times.append(time.monotonic())
                try:
                    items = scripted.reply(body)
                except Exception as e:  # a script error shows in the run, not as a hung client
                    items = [text(f"script error: {e!r}")]
                self.send(200, events(items), "text/event-stream")

            def send(self, status: int, data: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def requests(self) -> list[dict]:
        with self.lock:
            return list(self.bodies)

    def __enter__(self) -> "ScriptedResponses":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def events(items: list[dict]) -> bytes:
    """One answer as the Responses API streams it: created, each item added and done, completed."""
    rid = f"resp_{uuid.uuid4().hex[:12]}"
    evs = [{"type": "response.created", "response": {"id": rid}}]
    for n, item in enumerate(items):
        item = {"id": f"item_{uuid.uuid4().hex[:12]}", **item}
        if item["type"] == "function_call":
            item.setdefault("call_id", f"call_{uuid.uuid4().hex[:12]}")
        evs.append({"type": "response.output_item.added", "output_index": n, "item": item})
        evs.append({"type": "response.output_item.done", "output_index": n, "item": item})
    evs.append({"type": "response.completed", "response": {"id": rid, "usage": {
        "input_tokens": 10, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 15}}})
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in evs).encode()


# -- a throwaway Codex home --------------------------------------------------


def codex_home(home: Path, project: Path, model: ScriptedResponses, path: str = "", approval: str = "never",
               sandbox: str = "danger-full-access") -> dict[str, str]:
    """A CODEX_HOME whose provider is the scripted model and which trusts `project`; returns the environment."""
    codex = home / ".codex"
    codex.mkdir(parents=True, exist_ok=True)
    (codex / "config.toml").write_text(
        f'model = "{MODEL}"\nmodel_provider = "scripted"\napproval_policy = "{approval}"\nsandbox_mode = "{sandbox}"\n'
        '[model_providers.scripted]\nname = "scripted"\n'
        f'base_url = "{model.base_url}"\nenv_key = "SCRIPTED_KEY"\nwire_api = "responses"\n'
        f'[projects.{json.dumps(str(project))}]\ntrust_level = "trusted"\n', encoding="utf-8")
    env = {"HOME": str(home), "CODEX_HOME": str(codex), "SCRIPTED_KEY": "scripted", "LANG": "C.UTF-8",
           "PATH": path or "/usr/local/bin:/usr/bin:/bin", "NO_COLOR": "1"}
    return env


def run_exec(prompt: str, *, cwd: Path, env: dict, timeout: float = 90) -> subprocess.CompletedProcess:
    """`codex exec` headless: stdin closed (else it waits for more input), tempo's hooks trusted for this run."""
    argv = [str(codex_binary()), "exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-hook-trust", prompt]
    return subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
