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
