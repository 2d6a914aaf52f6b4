"""`tempo init`: .mcp.json created, merged without losing anything, never overwritten when invalid."""

import json
import os
import sys
from pathlib import Path

import pytest

import tempo
from conftest import TEMPO

SERVE = [*TEMPO, "serve"]  # how the tests run tempo


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
    command = " ".join(SERVE[:-1]) + " hook"
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


# A user's own settings, as people write them: several hooks per event, matchers, permissions,
# other programs whose names contain "tempo" and whose commands end in ` hook`, non-ASCII, 4 spaces.
USER_SETTINGS = """{
    "permissions": {
        "allow": ["Bash(npm run test:*)", "Read(~/notes/**)"],
        "deny": ["Bash(rm -rf:*)"]
    },
    "env": {"GREETING": "grüß dich — ✓"},
    "hooks": {
        "Stop": [
            {"hooks": [{"type": "command", "command": "python3 \\"$CLAUDE_PROJECT_DIR\\"/.claude/hooks/push_to_tempo.py hook"}]},
            {"hooks": [{"type": "command", "command": "say done", "timeout": 5}]}
        ],
        "PostToolUse": [
            {"matcher": "Edit|Write", "hooks": [
                {"type": "command", "command": "node ~/.claude/hooks/grafana-tempo hook"},
                {"type": "command", "command": "prettier --write \\"$CLAUDE_FILE_PATHS\\""}
            ]},
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "/usr/local/bin/tempo hook"}]}
        ],
        "PreToolUse": [
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "~/bin/guard.sh"}]}
        ]
    },
    "model": "opus"
}
"""


def test_init_keeps_every_hook_that_is_not_its_own_and_takes_back_exactly_its_own(cli, tmp_path):
    path = tmp_path / ".claude" / "settings.local.json"
    path.parent.mkdir()
    path.write_text(USER_SETTINGS, encoding="utf-8")
    user = json.loads(USER_SETTINGS)
    result = cli("init", "-d", str(tmp_path))
    assert result.returncode == 0 and "hooks merged" in result.stdout, result.stdout + result.stderr
    merged = json.loads(path.read_text(encoding="utf-8"))
    assert list(merged) == [*user, "enabledMcpjsonServers"] and merged["env"] == user["env"]
    assert merged["permissions"] == {**user["permissions"], "allow": [*user["permissions"]["allow"], "mcp__claude-tempo"]}
    for event, groups in user["hooks"].items():  # each of the user's groups, unchanged, first
        assert merged["hooks"][event][:len(groups)] == groups
    ours = " ".join(SERVE[:-1]) + " hook"
    assert [h["command"] for g in merged["hooks"]["Stop"][2:] for h in g["hooks"]] == [ours, ours + " wait"]
    text = path.read_text(encoding="utf-8")
    assert text.startswith('{\n    "permissions"') and "grüß dich — ✓" in text  # its indentation and characters
    # a second run changes nothing; an undo gives the user's file back, byte for byte
    assert "hooks already installed" in cli("init", "-d", str(tmp_path)).stdout
    assert path.read_text(encoding="utf-8") == text
    undone = cli("init", "--undo", "-d", str(tmp_path))
    assert undone.returncode == 0 and "hooks removed" in undone.stdout, undone.stdout + undone.stderr
    assert json.loads(path.read_text(encoding="utf-8")) == user
    assert "grüß dich — ✓" in path.read_text(encoding="utf-8")


def test_init_takes_its_own_hook_out_of_a_group_it_shares_with_the_users(cli, tmp_path):
    ours = " ".join(SERVE[:-1]) + " hook"
    spelled = " ".join(f"'{w}'" for w in SERVE[:-1]) + " hook"  # the same programs, quoted another way: still tempo's
    mine = {"type": "command", "command": "./lint.sh"}
    (tmp_path / ".claude").mkdir()
    (tmp_path / ".claude" / "settings.local.json").write_text(json.dumps(
        {"hooks": {"Stop": [{"hooks": [mine, {"type": "command", "command": spelled}]}],
                   "PostToolUse": [{"matcher": "*", "hooks": [{"type": "command", "command": ours}]}]}}))
    assert "hooks updated" in cli("init", "-d", str(tmp_path)).stdout
    hooks = settings(tmp_path)["hooks"]
    assert hooks["Stop"][0] == {"hooks": [mine]} and len(hooks["Stop"]) == 2
    assert [g["hooks"][0]["command"] for g in hooks["PostToolUse"]] == [ours]
    assert "hooks removed" in cli("init", "--undo", "-d", str(tmp_path)).stdout
    assert settings(tmp_path) == {"hooks": {"Stop": [{"hooks": [mine]}]}}


def test_init_merges_hooks_keeping_every_other_hook_and_key(cli, tmp_path):
    mine = {"matcher": "Bash", "hooks": [{"type": "command", "command": "./lint.sh"}]}
    original = {"permissions": {"allow": ["Bash(ls:*)"]}, "hooks": {"PostToolUse": [mine], "Notification": [mine]}}
    # a hook that runs a tempo at another path is not provably this tempo's: it stays
    original["hooks"]["Stop"] = [{"hooks": [{"type": "command", "command": "/old/bin/tempo hook"}]}]
    (tmp_path / ".claude").mkdir()
    (tmp_path / ".claude" / "settings.local.json").write_text(json.dumps(original))
    assert "hooks merged" in cli("init", "--no-approve", "-d", str(tmp_path)).stdout  # approval: its own test
    merged = settings(tmp_path)
    assert merged["permissions"] == original["permissions"]
    assert merged["hooks"]["Notification"][0] == mine
    assert merged["hooks"]["PostToolUse"][0] == mine and len(merged["hooks"]["PostToolUse"]) == 2
    assert merged["hooks"]["Stop"][0] == original["hooks"]["Stop"][0] and len(merged["hooks"]["Stop"]) == 2


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


# -- files reached through symlinks (a dotfiles repository), and files tempo cannot read ------------


def test_init_writes_through_symlinks_into_their_targets(cli, tmp_path):
    dotfiles = tmp_path / "dotfiles"
    (dotfiles / "claude").mkdir(parents=True)
    (dotfiles / "claude" / "settings.json").write_text('{\n\t"model": "opus",\n\t"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "say done"}]}]}\n}\n')
    (dotfiles / "mcp.json").write_text('{"mcpServers": {"docs": {"command": "docs-mcp"}}}')
    (dotfiles / "mcp.json").chmod(0o640)
    (cli.home / ".claude").mkdir()
    user = cli.home / ".claude" / "settings.json"
    user.symlink_to(dotfiles / "claude" / "settings.json")  # absolute link
    project = tmp_path / "project"
    project.mkdir()
    (project / ".mcp.json").symlink_to("../dotfiles/mcp.json")  # relative link
    result = cli("init", "--user", "-d", str(project))
    assert result.returncode == 0, result.stderr
    assert user.is_symlink() and (project / ".mcp.json").is_symlink()
    assert os.readlink(project / ".mcp.json") == "../dotfiles/mcp.json"
    target = json.loads((dotfiles / "claude" / "settings.json").read_text())
    assert target["model"] == "opus" and "Stop" in target["hooks"]
    assert (dotfiles / "claude" / "settings.json").read_text().startswith('{\n\t"model"')  # its tabs
    assert set(json.loads((dotfiles / "mcp.json").read_text())["mcpServers"]) == {"docs", "claude-tempo"}
    assert (dotfiles / "mcp.json").stat().st_mode & 0o777 == 0o640
    assert (dotfiles / "mcp.json").read_text().count("\n") == 0  # it was one line: it stays one line
    assert sorted(p.name for p in dotfiles.rglob("*")) == ["claude", "mcp.json", "settings.json"]  # no leftovers
    assert cli("init", "--undo", "--user", "-d", str(project)).returncode == 0
    assert user.is_symlink() and json.loads(user.read_text()) == {"model": "opus", "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "say done"}]}]}}
    assert json.loads((project / ".mcp.json").read_text()) == {"mcpServers": {"docs": {"command": "docs-mcp"}}}


def test_config_set_writes_through_a_symlinked_config_toml(cli, tmp_path):
    real = tmp_path / "dotfiles" / "tempo.toml"
    real.parent.mkdir()
    real.write_text('# mine\naddress = "a.example:7233"\n')
    (cli.home / ".claude-tempo").mkdir()
    (cli.home / ".claude-tempo" / "config.toml").symlink_to(real)
    assert cli("config", "set", "namespace", "prod").returncode == 0
    assert (cli.home / ".claude-tempo" / "config.toml").is_symlink()
    assert real.read_text() == '# mine\naddress = "a.example:7233"\nnamespace = "prod"\n'


@pytest.mark.parametrize("name", [".mcp.json", ".claude/settings.local.json"])
def test_init_refuses_json_with_comments_and_says_where(cli, tmp_path, name):
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    text = '{\n  // my servers\n  "mcpServers": {}\n}\n'
    path.write_text(text)
    for argv in (("init",), ("init", "--undo")):
        result = cli(*argv, "-d", str(tmp_path))
        assert result.returncode == 1 and f"{path} is not valid JSON (line 2, column 3" in result.stderr
        assert "tempo leaves it untouched: fix it" in result.stderr
        assert path.read_text() == text


def test_init_approves_only_tempos_own_server_and_tools_keeping_the_users(cli, tmp_path):
    """Nobody is at a recruited window: tempo approves its server and tools there, and nothing else."""
    settings = tmp_path / ".claude" / "settings.local.json"
    settings.parent.mkdir()
    user = {"enabledMcpjsonServers": ["github"], "permissions": {"allow": ["Bash(git status)"], "deny": ["WebFetch"]},
            "model": "opus"}
    settings.write_text(json.dumps(user))
    result = cli("init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "approved tempo's own MCP server (claude-tempo) and its tools (mcp__claude-tempo)" in result.stdout
    assert "--no-approve" in result.stdout  # and how to turn it off
    data = json.loads(settings.read_text())
    assert data["enabledMcpjsonServers"] == ["github", "claude-tempo"]
    assert data["permissions"] == {"allow": ["Bash(git status)", "mcp__claude-tempo"], "deny": ["WebFetch"]}
    assert data["model"] == "opus" and "Stop" in data["hooks"]
    undone = cli("init", "--undo", cwd=tmp_path)
    assert "approvals of claude-tempo and mcp__claude-tempo removed" in undone.stdout
    assert json.loads(settings.read_text()) == user  # exactly what tempo added, gone


def test_init_no_approve_leaves_claude_code_to_ask(cli, tmp_path):
    result = cli("init", "--no-approve", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / ".claude" / "settings.local.json").read_text())
    assert "enabledMcpjsonServers" not in data and "permissions" not in data
    result = cli("init", cwd=tmp_path, CLAUDE_TEMPO_APPROVE="false")  # the config key, by its variable
    assert "enabledMcpjsonServers" not in json.loads((tmp_path / ".claude" / "settings.local.json").read_text())
