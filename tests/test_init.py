"""`tempo init`: .mcp.json created, merged without losing anything, never overwritten when invalid."""

import json
import sys
from pathlib import Path

import pytest

import tempo
from conftest import ROOT

SERVE = [sys.executable, str(ROOT / "tempo.py"), "serve"]  # how the tests run tempo


def entry(directory: Path) -> dict:
    return json.loads((directory / ".mcp.json").read_text())["mcpServers"]["claude-tempo"]


def test_init_creates_mcp_json_with_an_absolute_command(cli, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    result = cli("init", "-d", str(project))
    assert result.returncode == 0, result.stderr
    assert "created" in result.stdout
    assert entry(project) == {"command": SERVE[0], "args": SERVE[1:]}
    again = cli("init", cwd=project)
    assert again.returncode == 0 and "already configured" in again.stdout


def test_init_merges_keeping_every_other_server_and_key(cli, tmp_path):
    original = {
        "mcpServers": {
            "github": {"command": "gh-mcp", "args": ["--stdio"], "env": {"TOKEN": "x"}},
            "claude-tempo": {"command": "/old/tempo", "args": ["serve"], "env": {"CLAUDE_TEMPO_ENSEMBLE": "team"}},
        },
        "somethingElse": [1, 2, 3],
    }
    (tmp_path / ".mcp.json").write_text(json.dumps(original, indent=4))
    result = cli("init", cwd=tmp_path)
    assert result.returncode == 0 and "updated" in result.stdout
    merged = json.loads((tmp_path / ".mcp.json").read_text())
    assert merged["somethingElse"] == [1, 2, 3]
    assert merged["mcpServers"]["github"] == original["mcpServers"]["github"]
    assert merged["mcpServers"]["claude-tempo"] == {"command": SERVE[0], "args": SERVE[1:], "env": {"CLAUDE_TEMPO_ENSEMBLE": "team"}}
    assert list(merged["mcpServers"]) == ["github", "claude-tempo"]


def test_init_adds_to_a_file_without_tempo(cli, tmp_path):
    (tmp_path / ".mcp.json").write_text('{"mcpServers": {"other": {"command": "x"}}}')
    result = cli("init", cwd=tmp_path)
    assert "merged" in result.stdout
    assert set(json.loads((tmp_path / ".mcp.json").read_text())["mcpServers"]) == {"other", "claude-tempo"}


@pytest.mark.parametrize(
    "text, where",
    [('{\n  "mcpServers": {,\n}\n', "line 2, column 18"), ('{"mcpServers": []}', "not an MCP config")],
)
def test_init_never_overwrites_an_invalid_file(cli, tmp_path, text, where):
    (tmp_path / ".mcp.json").write_text(text)
    result = cli("init", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("tempo: error: ") and where in result.stderr
    assert (tmp_path / ".mcp.json").read_text() == text


# server_command() decides what .mcp.json starts; the packaging helper relies on these three shapes.


def test_server_command_for_a_console_script(monkeypatch, tmp_path):
    script = tmp_path / "bin" / "tempo"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "argv", [str(script)])
    assert tempo.server_command() == [str(script), "serve"]
    monkeypatch.setattr(sys, "argv", ["tempo"])  # found on PATH by name
    monkeypatch.setenv("PATH", str(script.parent))
    assert tempo.server_command() == [str(script), "serve"]


def test_server_command_for_a_pyinstaller_binary(monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "argv", ["tempo-server"])
    assert tempo.server_command() == [sys.executable, "serve"]


def test_server_command_for_a_shiv_zipapp(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["./dist/tempo.pyz"])
    assert tempo.server_command() == [sys.executable, str(tmp_path / "dist" / "tempo.pyz"), "serve"]


# -- Claude Code hooks ------------------------------------------------------------------------


def settings(directory: Path) -> dict:
    return json.loads((directory / ".claude" / "settings.local.json").read_text())


def test_init_installs_the_hooks_and_a_second_run_changes_nothing(cli, tmp_path):
    result = cli("init", "-d", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "settings.local.json: hooks created" in result.stdout
    hooks = settings(tmp_path)["hooks"]
    command = f"{SERVE[0]} {SERVE[1]} hook"
    assert set(hooks) == {"SessionStart", "UserPromptSubmit", "PostToolUse", "PreToolUse", "Stop", "PermissionRequest", "Notification"}
    assert hooks["PreToolUse"][0]["matcher"] == "Edit|Write|MultiEdit|NotebookEdit"  # file reservations
    stop = hooks["Stop"][0]["hooks"]
    assert stop[0]["command"] == command and not stop[0].get("async")
    assert stop[1]["command"] == command + " wait" and stop[1]["asyncRewake"] is True
    assert [h["command"] for h in hooks["PostToolUse"][0]["hooks"]] == [command]
    before = (tmp_path / ".claude" / "settings.local.json").read_bytes()
    again = cli("init", "-d", str(tmp_path))
    assert "hooks already installed" in again.stdout
    assert (tmp_path / ".claude" / "settings.local.json").read_bytes() == before


def test_init_merges_hooks_keeping_every_other_hook_and_key(cli, tmp_path):
    mine = {"matcher": "Bash", "hooks": [{"type": "command", "command": "./lint.sh"}]}
    original = {"permissions": {"allow": ["Bash(ls:*)"]}, "hooks": {"PostToolUse": [mine], "Notification": [mine]}}
    (tmp_path / ".claude").mkdir()
    (tmp_path / ".claude" / "settings.local.json").write_text(json.dumps(original))
    # an older tempo's hooks (another path) are replaced, not doubled
    old = {"hooks": [{"type": "command", "command": "/old/bin/tempo hook"}]}
    original["hooks"]["Stop"] = [old]
    (tmp_path / ".claude" / "settings.local.json").write_text(json.dumps(original))
    assert "hooks updated" in cli("init", "-d", str(tmp_path)).stdout
    merged = settings(tmp_path)
    assert merged["permissions"] == original["permissions"]
    assert merged["hooks"]["Notification"] == [mine]
    assert merged["hooks"]["PostToolUse"][0] == mine and len(merged["hooks"]["PostToolUse"]) == 2
    assert len(merged["hooks"]["Stop"]) == 1 and "/old/" not in json.dumps(merged["hooks"]["Stop"])


@pytest.mark.parametrize("text", ['{"hooks": [1, 2', '{"hooks": []}', '[1]'])
def test_init_refuses_settings_it_cannot_read_and_leaves_them_untouched(cli, tmp_path, text):
    (tmp_path / ".claude").mkdir()
    path = tmp_path / ".claude" / "settings.local.json"
    path.write_text(text)
    result = cli("init", "-d", str(tmp_path))
    assert result.returncode == 1
    assert str(path) in result.stderr and "tempo leaves it untouched" in result.stderr
    assert path.read_text() == text


def test_init_user_installs_the_hooks_for_every_project(cli, tmp_path):
    result = cli("init", "--user", "-d", str(tmp_path))
    assert result.returncode == 0, result.stderr
    path = cli.home / ".claude" / "settings.json"
    assert f"{path}: hooks created" in result.stdout
    assert "Stop" in json.loads(path.read_text())["hooks"]
    assert not (tmp_path / ".claude" / "settings.local.json").exists()
