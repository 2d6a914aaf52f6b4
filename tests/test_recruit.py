"""recruit: a new session opens in a real tmux window, joins under its name, and gets its first task.

`claude` is a stand-in placed first on PATH: it records its argv, cwd and environment, then does
what Claude Code does with tempo — starts `tempo serve` through a real MCP stdio client, takes its
name with `set_name` as its first prompt asks, and answers each pushed cue with `cue`. tmux runs
on a private socket directory (TMUX_TMPDIR), never the user's server, and is killed at the end.
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, ToolFailed, play, tools_path, wait_until

STAND_IN = '''#!{python}
"""Stand-in for `claude`: record how it was started, then join as a player and echo cues back."""
import asyncio, json, os, sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAME = os.environ.get("CLAUDE_TEMPO_PLAYER_NAME", "unnamed")
(HERE / f"{{NAME}}.json").write_text(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}}))
if os.environ.get("STAND_IN_EXIT"):
    sys.exit(int(os.environ["STAND_IN_EXIT"]))


async def main():
    from mcp.client.extension import NotificationBinding
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client
    from pydantic import BaseModel

    class Channel(BaseModel):
        content: str
        meta: dict

    cues = asyncio.Queue()

    async def on_channel(params):
        await cues.put(params)

    server = StdioServerParameters(command=sys.executable, args=[{tempo!r}, "serve"], env=dict(os.environ))
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write, notification_bindings=[
            NotificationBinding(method="notifications/claude/channel", params_type=Channel, handler=on_channel)
        ]) as client:
            await client.initialize()
            await client.call_tool("set_name", {{"name": NAME}})  # what the first prompt asks
            while True:
                cue = await cues.get()
                with open(HERE / f"{{NAME}}.cues.jsonl", "a") as f:
                    f.write(json.dumps(cue.model_dump()) + "\\n")
                if cue.meta.get("kind") == "cue":
                    await client.call_tool("cue", {{"to": cue.meta["from"], "message": "got: " + cue.content}})


asyncio.run(main())
'''


@pytest.fixture
def stand_in(tmp_path) -> Path:
    """A directory holding the stand-in `claude`; its records land beside it."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    claude = bindir / "claude"
    claude.write_text(STAND_IN.format(python=sys.executable, tempo=str(ROOT / "tempo.py")))
    claude.chmod(claude.stat().st_mode | stat.S_IXUSR)
    return bindir


@pytest.fixture
def tmux_dir():
    """A private tmux socket directory (short: socket paths are limited); its server dies at the end."""
    directory = tempfile.mkdtemp(prefix="tt-")
    yield directory
    subprocess.run(["tmux", "kill-server"], env={**os.environ, "TMUX_TMPDIR": directory}, capture_output=True)
    shutil.rmtree(directory, ignore_errors=True)


def tmux(tmux_dir: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TMUX"}
    return subprocess.run(["tmux", *args], env={**env, "TMUX_TMPDIR": tmux_dir}, capture_output=True, text=True).stdout


def recruiter_env(stand_in: Path, tmux_dir: str, **extra: str) -> dict:
    return {
        "CLAUDE_TEMPO_TERMINAL": "tmux",
        "TMUX_TMPDIR": tmux_dir,
        "PATH": f"{stand_in}{os.pathsep}{tools_path()}",
        "SHELL": "/bin/sh",
        "CLAUDE_TEMPO_RECRUIT_TIMEOUT": "60",  # a slow shared machine; the default is 15 s
        **extra,
    }


async def cue_matching(player, prefix: str) -> dict:
    while True:  # other notices (a join, say) may come first
        cue = await player.next_cue(timeout=30)
        if cue["content"].startswith(prefix):
            return cue


@pytest.mark.anyio
async def test_recruit_opens_a_tmux_window_that_joins_and_gets_its_task(temporal, ensemble, stand_in, tmux_dir, tmp_path):
    workdir = tmp_path / "work dir 'ü' $x"
    workdir.mkdir()
    task = "fix the $bug in `parse()`\nthen say \"done\""
    env = recruiter_env(stand_in, tmux_dir, CLAUDE_TEMPO_CONDUCTOR="true")
    async with play(temporal, ensemble, **env) as boss:
        result = await boss.call("recruit", name="helper-1", directory=str(workdir), prompt=task)
        assert result["name"] == "helper-1"
        assert result["workflow_id"] == f"claude-session-{ensemble}-helper-1"
        assert result["directory"] == str(workdir)
        assert result["terminal"].startswith("tmux (a detached tmux session")
        assert result["message_id"]
        # the directory had no .mcp.json: tempo wrote one, so a real claude there loads tempo
        assert ".mcp.json created so the new session loads tempo" in result["setup"]
        assert "claude-tempo" in json.loads((workdir / ".mcp.json").read_text())["mcpServers"]
        # ... and its hooks, so cues reach its model even where channels are off
        assert ".claude/settings.local.json created with tempo's hooks" in result["setup"]
        # ... and approves its own server and tools there (nobody is at that window to answer)
        settings = json.loads((workdir / ".claude" / "settings.local.json").read_text())
        assert settings["enabledMcpjsonServers"] == ["claude-tempo"]
        assert settings["permissions"] == {"allow": ["mcp__claude-tempo"]}
        # Claude Code never trusted this directory: its trust dialog is named, with what to do
        assert "Is this a project you created or one you trust?" in result["setup"]
        assert "Stop" in json.loads((workdir / ".claude" / "settings.local.json").read_text())["hooks"]

        listing = await boss.call("ensemble")
        assert "helper-1" in [p["name"] for p in listing["players"]]
        assert "tempo helper-1" in tmux(tmux_dir, "list-windows", "-a", "-F", "#{window_name}").splitlines()

        record = json.loads((stand_in / "helper-1.json").read_text())
        assert record["cwd"] == str(workdir)
        assert record["argv"][:2] == ["--dangerously-load-development-channels", "server:claude-tempo"]
        assert record["argv"][2] == "--" and 'set_name with name "helper-1"' in record["argv"][3]
        assert record["env"]["CLAUDE_TEMPO_PLAYER_NAME"] == "helper-1"
        assert record["env"]["CLAUDE_TEMPO_ENSEMBLE"] == ensemble
        assert record["env"]["TEMPORAL_ADDRESS"] == temporal.address
        assert "CLAUDE_TEMPO_CONDUCTOR" not in record["env"]  # the recruiter is the conductor; the child is not

        # The first cue is the task, verbatim; the stand-in answers it through the real tools.
        answer = await cue_matching(boss, "got: ")
        assert answer["content"] == "got: " + task
        assert answer["meta"]["from"] == "helper-1"
        cues = [json.loads(line) for line in (stand_in / "helper-1.cues.jsonl").read_text().splitlines()]
        assert [c["content"] for c in cues if c["meta"]["kind"] == "cue"] == [task]

        # The name is now taken; recruiting it again is refused before any window opens.
        with pytest.raises(ToolFailed, match="already a player named 'helper-1'"):
            await boss.call("recruit", name="helper-1", directory=str(workdir))
        # A second recruit joins the same detached session as a new window.
        second = await boss.call("recruit", name="helper-2", directory=str(workdir))
        assert second["message_id"] == "" and "a new window in tmux session" in second["terminal"]
        windows = tmux(tmux_dir, "list-windows", "-a", "-F", "#{window_name}").splitlines()
        assert {"tempo helper-1", "tempo helper-2"} <= set(windows)


@pytest.mark.anyio
async def test_recruit_refuses_bad_requests_and_explains_a_timeout(temporal, ensemble, stand_in, tmux_dir, tmp_path):
    env = recruiter_env(stand_in, tmux_dir, CLAUDE_TEMPO_RECRUIT_TIMEOUT="3", STAND_IN_EXIT="1")
    async with play(temporal, ensemble, **env) as boss:
        with pytest.raises(ToolFailed, match="does not exist"):
            await boss.call("recruit", name="x1", directory=str(tmp_path / "missing"))
        with pytest.raises(ToolFailed, match="invalid name"):
            await boss.call("recruit", name="two words", directory=str(tmp_path))
        with pytest.raises(ToolFailed, match="reserved"):
            await boss.call("recruit", name="conductor", directory=str(tmp_path))
        broken = tmp_path / "broken"
        broken.mkdir()
        (broken / ".mcp.json").write_text('{"mcpServers": {')
        with pytest.raises(ToolFailed, match=r"not valid JSON \(line 1"):
            await boss.call("recruit", name="x2", directory=str(broken))
        assert (broken / ".mcp.json").read_text() == '{"mcpServers": {'  # never overwritten
        assert not (stand_in / "x2.json").exists()  # and nothing was launched
        # The window opens, but its `claude` exits at once: the message says what to check.
        with pytest.raises(ToolFailed) as failure:
            await boss.call("recruit", name="ghost", directory=str(tmp_path), prompt="hello")
        text = str(failure.value)
        assert "has not joined" in text and "`claude` installed" in text and ".mcp.json" in text
        await wait_until(lambda: (stand_in / "ghost.json").exists())  # it did start, with its name


@pytest.mark.anyio
async def test_up_opens_the_conductor_in_tmux_and_a_second_up_reuses_it(cli, temporal, ensemble, stand_in, tmux_dir, tmp_path):
    """`tempo up` on a headless machine: the conductor starts in a tmux window and joins."""
    import tempo

    project = tmp_path / "project"
    project.mkdir()
    env = {**recruiter_env(stand_in, tmux_dir), "TEMPORAL_ADDRESS": temporal.address}
    first = cli("up", ensemble, "-d", str(project), **env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "✓ conductor joined ensemble" in first.stdout  # ✓ only once it has joined
    assert f"tmux attach -t tempo-{ensemble}" in first.stdout
    client = await tempo.connect(tempo.Config(address=temporal.address))

    async def conductor():
        return await tempo.find_player(client, ensemble, "conductor")

    _, info = await wait_until(conductor, timeout=60)
    assert info.role == "conductor" and info.directory == str(project)
    record = json.loads((stand_in / "unnamed.json").read_text())  # the stand-in of the conductor
    assert record["env"]["CLAUDE_TEMPO_CONDUCTOR"] == "true" and record["cwd"] == str(project)
    assert record["argv"] == ["--dangerously-load-development-channels", "server:claude-tempo"]
    again = cli("up", ensemble, "-d", str(project), **env)
    assert again.returncode == 0 and "✓ conductor already running in ensemble" in again.stdout
    assert tmux(tmux_dir, "list-windows", "-a", "-F", "#{window_name}").count("tempo conductor") == 1


def test_up_with_no_claude_for_a_new_window_launches_nothing_and_says_how_to_install(cli, temporal, ensemble, tmux_dir, tmp_path):
    """No `claude` where a new window's login shell looks: ✗ with the install command, no window opened."""
    project, home = tmp_path / "project", tmp_path / "user"
    project.mkdir()
    home.mkdir()
    env = {"CLAUDE_TEMPO_TERMINAL": "tmux", "TMUX_TMPDIR": tmux_dir, "PATH": tools_path(), "SHELL": "/bin/bash",
           "HOME": str(home), "TEMPORAL_ADDRESS": temporal.address}
    result = cli("up", ensemble, "-d", str(project), **env)
    assert result.returncode == 1
    assert "✗ `claude` (Claude Code) is not on the PATH a new window's login shell (/bin/bash) has" in result.stdout
    assert "npm install -g @anthropic-ai/claude-code" in result.stdout
    assert "launched" not in result.stdout and "joined" not in result.stdout
    assert tmux(tmux_dir, "list-windows", "-a") == ""  # nothing was started


def test_claude_only_on_the_login_shells_path_is_found_for_a_window(tmp_path, monkeypatch):
    """fnm/nvm put `claude` on PATH in ~/.bash_profile: a new window finds it there, so tempo does too."""
    import tempo

    bindir = tmp_path / "node-bin"
    bindir.mkdir()
    (bindir / "claude").write_text("#!/bin/sh\n")
    (bindir / "claude").chmod(0o755)
    (tmp_path / ".bash_profile").write_text(f'export PATH="{bindir}:$PATH"\n')
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SHELL", "/bin/bash")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert tempo.window_finds("claude") == str(bindir / "claude")
    (tmp_path / ".bash_profile").unlink()
    assert tempo.window_finds("claude") is None


def test_which_directories_claude_code_trusts_as_measured(tmp_path, monkeypatch):
    """Claude Code 2.1.197 (measured in tmux): a trusted git repository speaks for its sub-directories and
    worktrees; outside git a trusted parent spares the trust dialog, but the directory's own settings
    (tempo's hooks and approval) are ignored, so tempo says what to do; elsewhere the trust dialog waits."""
    import tempo

    repo, plain, other = tmp_path / "repo", tmp_path / "plain", tmp_path / "other"
    for d in (repo / "web", plain / "api", other):
        d.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    (tmp_path / ".claude.json").write_text(json.dumps({"projects": {
        str(repo): {"hasTrustDialogAccepted": True}, str(plain): {"hasTrustDialogAccepted": True}}}))
    assert tempo._claude_trust(str(repo / "web")) == "trusted" and tempo.trust_note(str(repo / "web")) == ""
    assert tempo._claude_trust(str(plain / "api")) == "parent"
    assert "ignores its .claude/settings.local.json" in tempo.trust_note(str(plain / "api"))
    assert "tempo init --user" in tempo.trust_note(str(plain / "api"))
    tempo.install_hooks("", user=True)
    tempo.approve_tempo("", user=True)  # what `tempo init --user` does: then nothing is left to ask
    assert tempo.trust_note(str(plain / "api")) == ""
    assert tempo._claude_trust(str(other)) == "untrusted"
    assert "Is this a project you created or one you trust?" in tempo.trust_note(str(other))
