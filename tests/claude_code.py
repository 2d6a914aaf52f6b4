"""The real Claude Code, with its model replaced by a scripted Messages API on loopback.

`ScriptedModel` answers `POST /v1/messages` (streamed as server-sent events when the request
says so) with scripted text or tool_use blocks and records every request body: what the model
was shown is in those bodies. `claude_home()` makes a throwaway HOME that Claude Code accepts
without a human (onboarding done, the key approved, the project trusted); `run_print()` runs
`claude -p`; `Interactive` runs a session in real tmux on a private socket.

The binary is always ROOT/node_modules/.bin/claude (`npm ci` installs it), never one on PATH.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterable

ROOT = Path(__file__).resolve().parent.parent
CLAUDE = ROOT / "node_modules" / ".bin" / "claude"
API_KEY = "sk-ant-api03-tempo-tests-" + "x" * 40 + "-scripted-AA"
MODEL = "claude-sonnet-4-5"
READY = "? for shortcuts"
WAIT_TOOL = "WaitForMcpServers"  # offered while an MCP server is still connecting  # the footer under an interactive session's prompt box


def claude_binary() -> Path:
    """The project's pinned Claude Code; fail clearly if `npm ci` has not installed it."""
    if not CLAUDE.exists():
        raise AssertionError(f"{CLAUDE} is missing: run `npm ci` in {ROOT} to install the pinned Claude Code")
    return CLAUDE


def poll(check: Callable[[], object], timeout: float = 20, what: str = "the condition") -> object:
    """Call `check()` until it returns something truthy (returned); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(0.05)
    return value


# -- the scripted model ------------------------------------------------------


def text(value: str) -> dict:
    return {"type": "text", "text": value}


def tool_use(name: str, input: dict | None = None) -> dict:
    return {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": name, "input": input or {}}


def is_main(body: dict) -> bool:
    """A request of the main conversation (it offers tools), not a side request (titles, quota, ...)."""
    return bool(body.get("tools")) and bool(body.get("messages"))


def tool_names(body: dict) -> list[str]:
    return [t.get("name", "") for t in body.get("tools") or []]


def mcp_pending(body: dict) -> bool:
    """Claude Code offers WaitForMcpServers and no MCP tool yet: a server is still connecting."""
    names = tool_names(body)
    return WAIT_TOOL in names and not any(n.startswith("mcp__") for n in names) and calls(body, WAIT_TOOL) < 3


def calls(body: dict, name: str) -> int:
    """How many times the conversation so far called tool `name`."""
    return sum(1 for m in body.get("messages", []) if m.get("role") == "assistant" and isinstance(m.get("content"), list)
               for b in m["content"] if b.get("type") == "tool_use" and b.get("name") == name)


def _flatten(value) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _flatten(item)
    elif isinstance(value, dict):
        kind = value.get("type")
        if kind == "text":
            yield value.get("text", "")
        elif kind == "tool_result":
            yield from _flatten(value.get("content", ""))
        elif kind == "tool_use":
            yield json.dumps(value.get("input", {}))
        elif "content" in value:
            yield from _flatten(value["content"])


def shown(body: dict) -> str:
    """Everything the model was shown in one request: system, messages, tool results, reminders."""
    parts = list(_flatten(body.get("system", "")))
    for message in body.get("messages", []):
        parts.extend(_flatten(message.get("content", "")))
    return "\n".join(parts)


def last_user_text(body: dict) -> str:
    """What the last user turn of a request carried (its prompt, tool results, reminders)."""
    messages = [m for m in body.get("messages", []) if m.get("role") == "user"]
    return "\n".join(_flatten(messages[-1].get("content", ""))) if messages else ""


Reply = Callable[[dict], "list[dict | str] | None"]


class ScriptedModel:
    """A Messages API on 127.0.0.1 that answers from a script and records every request.

    `reply(body)` returns the blocks of the answer (a str is a text block) or None for the
    default ("ok", end_turn); it is asked only for main-conversation requests (see `is_main`),
    after the queued replies (`queue(...)`) are used up. Side requests always get the default.
    Claude Code may ask the model before an MCP server has connected (its tools then missing, and
    WaitForMcpServers offered instead): the model first calls WaitForMcpServers (up to 3 times).
    """

    def __init__(self, reply: Reply | None = None, *, delay: float = 0.0, wait_for_mcp: bool = True):
        self.reply = reply
        self.wait_for_mcp = wait_for_mcp  # call WaitForMcpServers first while it is offered, as a model would
        self.delay = delay  # seconds before answering a main request (a slow model)
        self._queue: deque = deque()
        self._requests: list[dict] = []
        self._lock = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "ScriptedModel":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def queue(self, *replies: "list[dict | str]") -> None:
        """Answer the next main requests with these replies, in order."""
        with self._lock:
            self._queue.extend(replies)

    def requests(self, main_only: bool = True) -> list[dict]:
        """Recorded request bodies, oldest first (each with "_path" and "_at", a monotonic time)."""
        with self._lock:
            return [r for r in self._requests if is_main(r) or not main_only]

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 20, main_only: bool = True,
                 after: int = 0) -> dict:
        """The first recorded request (from index `after` of requests()) that satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for body in self.requests(main_only)[after:]:
                    if predicate(body):
                        return body
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [last_user_text(b)[-300:] for b in self.requests(main_only)[-3:]]
                    raise AssertionError(f"no matching model request within {timeout}s; last ones showed: {seen}")
                self._lock.wait(left)

    def _record(self, path: str, body: dict) -> None:
        with self._lock:
            self._requests.append({**body, "_path": path, "_at": time.monotonic()})
            self._lock.notify_all()

    def _answer(self, body: dict) -> list[dict]:
        blocks = None
        if is_main(body) and self.wait_for_mcp and mcp_pending(body):
            blocks = [tool_use(WAIT_TOOL, {})]
        elif is_main(body):
            with self._lock:
                if self._queue:
                    blocks = self._queue.popleft()
            if blocks is None and self.reply:
                blocks = self.reply(body)
        blocks = blocks if blocks is not None else ["ok"]
        return [text(b) if isinstance(b, str) else b for b in blocks]

    def _handler(self):
        model = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _json(self, status: int, data: dict) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # anything Claude Code probes at start: harmless and empty
                self._json(200, {"data": [], "has_more": False})

            def do_HEAD(self) -> None:
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                path = self.path.split("?")[0]
                model._record(self.path, body if isinstance(body, dict) else {})
                if path.endswith("/count_tokens"):
                    return self._json(200, {"input_tokens": 10})
                if not path.endswith("/v1/messages"):
                    return self._json(200, {})
                if model.delay and is_main(body):
                    time.sleep(model.delay)
                blocks = model._answer(body)
                if body.get("stream"):
                    self._stream(body, blocks)
                else:
                    self._json(200, message(body, blocks))

            def _stream(self, body: dict, blocks: list[dict]) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("connection", "close")
                self.end_headers()
                for event, data in sse_events(body, blocks):
                    self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
                self.close_connection = True

        return Handler


def message(body: dict, blocks: list[dict]) -> dict:
    stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant",
        "model": body.get("model", MODEL), "content": blocks, "stop_reason": stop, "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }


def sse_events(body: dict, blocks: list[dict]) -> Iterable[tuple[str, dict]]:
    whole = message(body, blocks)
    start = {**whole, "content": [], "stop_reason": None, "usage": {"input_tokens": 10, "output_tokens": 1}}
    yield "message_start", {"type": "message_start", "message": start}
    for index, block in enumerate(blocks):
        if block["type"] == "tool_use":
            yield "content_block_start", {"type": "content_block_start", "index": index,
                                          "content_block": {**block, "input": {}}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        else:
            yield "content_block_start", {"type": "content_block_start", "index": index,
                                          "content_block": {"type": "text", "text": ""}}
            delta = {"type": "text_delta", "text": block["text"]}
        yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": whole["stop_reason"], "stop_sequence": None},
                            "usage": {"output_tokens": 5}}
    yield "message_stop", {"type": "message_stop"}


# -- the real client ----------------------------------------------------------


def claude_home(home: Path, project: Path, model: ScriptedModel) -> dict[str, str]:
    """Make `home` a HOME Claude Code starts in without a human; return the environment to run it with."""
    home.mkdir(parents=True, exist_ok=True)
    state = {
        "hasCompletedOnboarding": True,
        "lastOnboardingVersion": "2.1.197",
        "customApiKeyResponses": {"approved": [API_KEY[-20:]], "rejected": []},
        "bypassPermissionsModeAccepted": True,
        "projects": {str(project.resolve()): {
            "hasTrustDialogAccepted": True, "enableAllProjectMcpServers": True,
            "hasCompletedProjectOnboarding": True, "allowedTools": [],
        }},
    }
    (home / ".claude.json").write_text(json.dumps(state, indent=2))
    (home / ".claude").mkdir(exist_ok=True)
    return {
        "HOME": str(home),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
        "TERM": "xterm-256color",
        "ANTHROPIC_BASE_URL": model.url,
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_MODEL": MODEL,
        "ANTHROPIC_SMALL_FAST_MODEL": MODEL,
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_BUG_COMMAND": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
        "CLAUDE_CODE_IDE_SKIP_AUTO_INSTALL": "1",
        # `claude -p` sends its first request without waiting for MCP servers (2.1.197: "running fully
        # async (nonblocking)"): make it wait, up to 30 s on a busy machine, so tempo's tools are there.
        "MCP_CONNECTION_NONBLOCKING": "false",
        "MCP_CONNECT_TIMEOUT_MS": "30000",
    }


def write_tempo_mcp_json(project: Path, server_env: dict[str, str]) -> Path:
    """The project's .mcp.json as `tempo init` writes it (this Python, ROOT/tempo.py serve), plus env."""
    path = project / ".mcp.json"
    entry = {"command": sys.executable, "args": [str(ROOT / "tempo.py"), "serve"], "env": server_env}
    path.write_text(json.dumps({"mcpServers": {"claude-tempo": entry}}, indent=2))
    return path


def write_hooks(project: Path, hooks: dict) -> Path:
    """Write `{"hooks": hooks}` into the project's .claude/settings.local.json (tests' throwaway hooks)."""
    path = project / ".claude" / "settings.local.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"hooks": hooks}, indent=2))
    return path


def run_print(prompt: str, *, cwd: Path, env: dict[str, str], args: Iterable[str] = (), timeout: float = 60
              ) -> subprocess.CompletedProcess:
    """Run one headless `claude -p PROMPT` in `cwd`."""
    return subprocess.run([str(claude_binary()), "-p", prompt, *args], cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


# What Claude Code records in the transcript (JSONL at the hooks' `transcript_path`) as shown to the
# model: user entries (a Stop block's "Stop hook feedback:\n...", a rewake's <task-notification>),
# and these attachments, by the field that holds the text. Not listed, so never "seen": queue-operation
# lines (queued, not yet shown), async_hook_response (an `"async": true` hook's output, never shown),
# system lines (stop_hook_summary).
SHOWN_ATTACHMENTS = {
    "hook_additional_context": "content",  # additionalContext of SessionStart/UserPromptSubmit/PostToolUse
    "hook_success": "content",  # a hook's plain stdout (SessionStart); "" when it printed JSON
    "hook_blocking_error": "blockingError",  # the Stop block reason, beside the user entry
    "queued_command": "prompt",  # a rewake that arrived mid-turn, appended to a tool result
}


def transcript(path: str | Path) -> list[dict]:
    """The entries of a Claude Code session transcript (one JSON object a line)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def transcript_shown(path: str | Path, needle: str) -> list[dict]:
    """The transcript entries that show `needle` (a message id, say) to the model."""
    found = []
    for entry in transcript(path):
        if entry.get("type") == "user":
            content = entry.get("message", {}).get("content", "")
            text_ = content if isinstance(content, str) else "\n".join(_flatten(content))
        elif entry.get("type") == "attachment" and entry["attachment"].get("type") in SHOWN_ATTACHMENTS:
            text_ = json.dumps(entry["attachment"][SHOWN_ATTACHMENTS[entry["attachment"]["type"]]])
        else:
            continue
        if needle in text_:
            found.append(entry)
    return found


class Interactive:
    """An interactive Claude Code session in real tmux, on a private server (its own socket)."""

    def __init__(self, *, cwd: Path, env: dict[str, str], args: Iterable[str] = (), width: int = 160, height: int = 50):
        self.socket = f"tempo-test-{uuid.uuid4().hex[:10]}"
        self.cwd, self.env, self.args = cwd, env, list(args)
        self.size = (width, height)

    def tmux(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.socket, *argv], capture_output=True, text=True, check=check,
                              env={**self.env, "TMUX": ""}, timeout=10)

    def __enter__(self) -> "Interactive":
        command = " ".join(shlex.quote(a) for a in [str(claude_binary()), *self.args])
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "main", "-x", str(self.size[0]), "-y", str(self.size[1]),
                  "-c", str(self.cwd), *[f"-e{k}={v}" for k, v in self.env.items()], command)
        self.tmux("set-option", "-t", "main", "remain-on-exit", "on")
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Kill the tmux server this session started (by its socket), and with it claude."""
        self.tmux("kill-server", check=False)

    def wait_ready(self, timeout: float = 30) -> str:
        """Wait until Claude Code shows its prompt box, ready for input."""
        return self.wait_screen(READY, timeout)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-t", "main", check=False).stdout

    def pane_pid(self) -> int:
        return int(self.tmux("display-message", "-p", "-t", "main", "#{pane_pid}").stdout.strip())

    def wait_screen(self, needle: str | Callable[[str], bool], timeout: float = 20) -> str:
        """Wait until the screen contains `needle` (or satisfies it); return the screen."""
        match = needle if callable(needle) else (lambda s: needle in s)
        deadline = time.monotonic() + timeout
        while True:
            current = self.screen()
            if match(current):
                return current
            if time.monotonic() > deadline:
                raise AssertionError(f"screen never showed {needle!r} within {timeout}s; it shows:\n{current}")
            time.sleep(0.1)

    def type(self, prompt: str) -> None:
        """Type a prompt and press Enter."""
        self.tmux("send-keys", "-t", "main", "-l", prompt)
        time.sleep(0.2)  # the prompt box takes the text before Enter submits it
        self.tmux("send-keys", "-t", "main", "Enter")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "main", *keys)


# -- the promise every real-client test checks ----------------------------------------------------


async def seen_means_seen(sender, model: ScriptedModel, texts: dict[str, str]) -> list[dict]:
    """For every receipt `seen` of the cues `texts` (message_id -> text) that `sender` (a conftest player)
    sent: the cue's whole text, with its id, is in one request the scripted model got. Returns the receipts."""
    rows = (await sender.call("receipts", message_ids=list(texts)))["receipts"]
    bodies = [shown(b) for b in model.requests()]
    for row in rows:
        if row["state"] == "seen":
            lines = texts[row["message_id"]].splitlines()  # each line as framed (tempo marks every line of a cue)
            whole = [b for b in bodies if row["message_id"] in b and all(line in b for line in lines)]
            assert whole, (f"receipt says seen ({row['path']}) but no model request holds cue {row['message_id']} "
                           f"whole ({len(texts[row['message_id']])} chars)")
    return rows
