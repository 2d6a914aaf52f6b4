"""The Copilot bridge: cues become prompts at once; tempo's tools reach Copilot over MCP.

Only the Copilot SDK's session object is replaced (by `open_agent`): Temporal, the bridge's
player, its MCP server over loopback HTTP and a real MCP client calling it are all real. The
missing-SDK and missing-CLI errors are produced by real `tempo bridge` runs.
"""

import asyncio
import contextlib
import os
import subprocess
import sys

import pytest

import tempo
from conftest import ROOT, play


class FakeCopilotSession:
    """Stands where the SDK's CopilotSession stands: `send` gets the prompts."""

    def __init__(self, tools) -> None:
        self.tools = tools  # a real MCP client session on the bridge's server
        self.prompts: asyncio.Queue = asyncio.Queue()

    async def send(self, prompt: str, *, mode: str | None = None, **_) -> str:
        await self.prompts.put((prompt, mode))
        return "message-1"


@pytest.mark.anyio
async def test_each_cue_becomes_a_prompt_and_tools_answer_over_mcp(temporal, ensemble, tmp_path):
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    opened: asyncio.Future = asyncio.get_running_loop().create_future()
    seen_servers = {}

    @contextlib.asynccontextmanager
    async def open_agent(cfg, mcp_servers):
        seen_servers.update(mcp_servers)
        async with streamable_http_client(mcp_servers["claude-tempo"]["url"]) as (read, write, *_):
            async with ClientSession(read, write) as tools:
                await tools.initialize()
                agent = FakeCopilotSession(tools)
                opened.set_result(agent)
                yield agent

    cfg = tempo.Config(address=temporal.address, ensemble=ensemble, name="copilot-1", directory=str(tmp_path))
    stop = asyncio.Event()
    running = asyncio.create_task(tempo.bridge(cfg, open_agent=open_agent, stop=stop))
    try:
        agent = await asyncio.wait_for(opened, 30)
        assert seen_servers["claude-tempo"]["type"] == "http"
        listing = (await agent.tools.call_tool("ensemble", {})).structured_content
        assert [p["name"] for p in listing["players"] if p.get("you")] == ["copilot-1"]

        async with play(temporal, ensemble) as alice:
            await alice.call("set_name", name="alice")
            await alice.call("cue", to="copilot-1", message="review `x` for $bugs\nplease")
            prompt, mode = await asyncio.wait_for(agent.prompts.get(), 15)
            assert prompt.startswith("[tempo cue from alice, message_id ")
            assert "review `x` for $bugs\nplease" in prompt and 'to="alice"' in prompt
            assert mode == "enqueue"

            # Copilot answers through tempo's own tool, as the bridge's player.
            result = await agent.tools.call_tool("cue", {"to": "alice", "message": "looks fine"})
            assert not result.is_error
            answer = await alice.next_cue()
            assert answer["content"] == "looks fine" and answer["meta"]["from"] == "copilot-1"
            assert agent.prompts.empty()  # each cue once, and nothing else pushed
    finally:
        stop.set()
        assert await asyncio.wait_for(running, 30) == 0


def run_bridge(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env})


def test_without_the_sdk_it_says_what_to_install():
    # sys.modules[name] = None is how Python itself marks a module as not importable.
    done = run_bridge("import sys; sys.modules['copilot'] = None; import tempo; sys.exit(tempo.main(['bridge']))")
    assert done.returncode == 1
    assert "tempo: error: the Copilot bridge needs the GitHub Copilot SDK: pip install 'claude-tempo[copilot]'" in done.stderr


def test_without_the_copilot_cli_it_says_what_to_install(tmp_path):
    env = {"PATH": os.path.dirname(sys.executable), "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path),
           "COPILOT_CLI_PATH": ""}
    done = run_bridge("import sys, tempo; sys.exit(tempo.main(['bridge']))", **env)
    assert done.returncode == 1
    assert "needs the GitHub Copilot CLI: run `python -m copilot download-runtime`" in done.stderr
    done = run_bridge("import sys, tempo; sys.exit(tempo.main(['bridge']))", **{**env, "COPILOT_CLI_PATH": "/nope"})
    assert "COPILOT_CLI_PATH='/nope' is not a file" in done.stderr
