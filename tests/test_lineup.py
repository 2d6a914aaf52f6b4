"""Lineups: a team in a TOML file, started by `tempo up --lineup` (or `load_lineup`), saved back.

Real dev server, real tmux on a private socket directory, stand-in `claude` executables that join
through MCP (test_recruit's), a real git repository for the worktree player.
"""

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import tempo
from conftest import ROOT, ToolFailed, play, wait_until
from test_recruit import STAND_IN, recruiter_env, tmux, tmux_dir  # noqa: F401 (tmux_dir is a fixture)

pytestmark = pytest.mark.anyio

LINEUP = """\
# the shop team
ensemble = "{ensemble}"

[conductor]
directory = "."
prompt = "You lead this team: split the work, review results."

[[player]]
name = "api"
directory = "services/api"
prompt = "Own the HTTP API."
worktree = true          # a git worktree of its own, on branch tempo/api

[[player]]
name = "ui"
directory = "web"
prompt = "Own the web UI."

[[player]]
name = "docs"
directory = "docs"

[[schedule]]
name = "standup"
to = "api, ui"
every = "30m"
message = "Tell the team what changed."
why = "keep the team in sync"
"""


@pytest.fixture
def stand_in(tmp_path) -> Path:
    """test_recruit's stand-in `claude`, except that a conductor does not echo cues back (no ping-pong)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    echo = 'if cue.meta.get("kind") == "cue":'
    source = STAND_IN.format(python=sys.executable, tempo=str(ROOT / "tempo.py"))
    assert echo in source
    source = source.replace(echo, echo[:-1] + ' and not os.environ.get("CLAUDE_TEMPO_CONDUCTOR"):')
    claude = bindir / "claude"
    claude.write_text(source)
    claude.chmod(0o755)
    return bindir


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def shop(tmp_path) -> Path:
    """A git repository with one commit and the team's directories."""
    repo = tmp_path / "shop"
    for sub in ("services/api", "web", "docs"):
        (repo / sub).mkdir(parents=True)
        (repo / sub / "README").write_text(sub + "\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start", "--allow-empty")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "dirs")
    return repo


def seats(lineup: "tempo.Lineup") -> list[tuple]:
    return sorted((s.name, s.directory, s.agent, s.worktree, s.prompt) for s in [lineup.conductor, *lineup.players])


async def test_up_with_a_lineup_starts_the_team_once_and_saves_it(cli, temporal, ensemble, stand_in, tmux_dir, shop):
    file = shop / "team.toml"
    file.write_text(LINEUP.format(ensemble=ensemble))
    env = {**recruiter_env(stand_in, tmux_dir), "TEMPORAL_ADDRESS": temporal.address}
    first = cli("up", "--lineup", str(file), **env, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    for name in ("api", "ui", "docs"):
        assert f"✓ player {name}: joined from" in first.stdout
    assert "✓ schedule standup: every 30m, to api, ui" in first.stdout  # once its targets had joined

    client = await tempo.connect(tempo.Config(address=temporal.address))
    players = {p.name: p for p in await tempo.list_players(client, ensemble)}
    assert sorted(players) == ["api", "conductor", "docs", "ui"]
    assert players["conductor"].directory == str(shop)
    assert players["ui"].directory == str(shop / "web") and players["ui"].worktree == ""
    worktree = shop.parent / "shop.tempo" / "api"
    assert players["api"].directory == str(worktree / "services/api")
    assert (players["api"].worktree, players["api"].branch) == (str(worktree), "tempo/api")
    assert git(shop, "rev-parse", "tempo/api") == git(shop, "rev-parse", "main")

    # The conductor got its prompt; each player its task as a cue from the conductor, and answered it.
    conductor = json.loads((stand_in / "unnamed.json").read_text())
    # The conductor's task is handed over once its players have joined (its first turn reaches them).
    assert conductor["argv"][-1].startswith(f"You are the conductor of the tempo ensemble {ensemble}.")
    assert "✓ conductor's task handed over" in first.stdout
    def commands() -> list[str]:  # the conductor's file also gets its players' news, which may come first
        path = stand_in / "unnamed.cues.jsonl"
        cues = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        return [c["content"] for c in cues if c["meta"]["kind"] == "command"]

    await wait_until(commands, timeout=30)
    assert commands() == ["You lead this team: split the work, review results."]
    await wait_until(lambda: (stand_in / "api.cues.jsonl").exists(), timeout=30)
    api_cues = [json.loads(line) for line in (stand_in / "api.cues.jsonl").read_text().splitlines()]
    assert [(c["content"], c["meta"]["from"]) for c in api_cues if c["meta"]["kind"] == "cue"] == [("Own the HTTP API.", "conductor")]

    def answers() -> list[str]:
        path = stand_in / "unnamed.cues.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return sorted(c["content"] for c in map(json.loads, lines) if c["meta"]["kind"] == "cue")

    await wait_until(lambda: len(answers()) == 2, timeout=30)
    assert answers() == ["got: Own the HTTP API.", "got: Own the web UI."]
    history = await client.get_workflow_handle(f"claude-session-{ensemble}-conductor").query("history")
    assert sorted(h["recipient"] for h in history if h["direction"] == "out") == ["api", "ui"]

    # Again: everything runs, nothing is doubled.
    again = cli("up", "--lineup", str(file), **env, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "✓ conductor already running" in again.stdout
    for name in ("api", "ui", "docs"):
        assert f"✓ player {name}: already running in" in again.stdout
    assert "✓ schedule standup: already scheduled" in again.stdout
    windows = tmux(tmux_dir, "list-windows", "-a", "-F", "#{window_name}").splitlines()
    assert sorted(windows) == sorted([f"tempo conductor {ensemble}", "tempo api", "tempo ui", "tempo docs"])
    assert len(await tempo.list_players(client, ensemble)) == 4

    # One player ends: the next run starts that one only.
    from tempo_workflows import EndRequest, PlayerWorkflow

    handle, _ = await tempo.find_player(client, ensemble, "docs")
    await handle.signal(PlayerWorkflow.finish, EndRequest(reason="closed its window"))
    await handle.result()
    third = cli("up", "--lineup", str(file), **env, timeout=300)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "✓ player docs: joined from" in third.stdout
    assert "✓ player api: already running" in third.stdout and "✓ player ui: already running" in third.stdout
    windows = tmux(tmux_dir, "list-windows", "-a", "-F", "#{window_name}").splitlines()
    assert windows.count("tempo docs") == 2 and windows.count("tempo api") == windows.count("tempo ui") == 1

    # Saved as a new file: the same team (prompts are not known to a running ensemble).
    saved = shop / "saved.toml"
    result = cli("lineup", "save", str(saved), ensemble, **env)
    assert result.returncode == 0, result.stderr
    assert "saved ensemble" in result.stdout
    original = tempo.read_lineup(file)
    copy = tempo.read_lineup(saved)
    assert copy.ensemble == original.ensemble == ensemble
    assert [s[:4] for s in seats(copy)] == [s[:4] for s in seats(original)]
    assert [{k: v for k, v in plan.items() if k != "timezone"} for plan in copy.schedules] == original.schedules
    # Saved over the lineup it was started from: its prompts are kept, and it reads back the same.
    result = cli("lineup", "save", str(file), ensemble, **env)
    assert result.returncode == 0, result.stderr
    assert seats(tempo.read_lineup(file)) == seats(original)


MALFORMED = """\
ensemble = "two words"
[conductor]
directory = "."
colour = "blue"
[[player]]
name = "api"
directory = "nowhere"
[[player]]
name = "ui"
agent = "gpt"
worktree = "yes"
[[player]]
directory = "."
[[player]]
name = "docs"
[[player]]
name = "docs"
[[schedule]]
name = "standup"
every = "30s"
at = "17:00"
message = "status?"
[[schedule]]
name = "nightly"
cron = "every night"
"""


def test_a_malformed_lineup_is_reported_by_line_and_nothing_starts(cli, stand_in, tmux_dir, shop):
    file = shop / "team.toml"
    file.write_text(MALFORMED)
    env = {**recruiter_env(stand_in, tmux_dir), "TEMPORAL_ADDRESS": "127.0.0.1:1"}
    result = cli("up", "--lineup", str(file), **env)
    assert result.returncode == 1 and result.stdout == ""
    errors = result.stderr
    assert f"the lineup {file} is not valid; nothing was started" in errors
    for expected in (
        f"{file}:1: invalid ensemble name 'two words'",
        f"{file}:4: [conductor]: unknown key 'colour' (known: directory, prompt, agent)",
        f"{file}:7: [[player]] 1: directory '{shop / 'nowhere'}' does not exist",
        f"{file}:10: [[player]] 2: unknown agent 'gpt': use 'claude' or 'copilot' or 'codex'",
        f"{file}:11: [[player]] 2: worktree must be true or false, not 'yes'",
        f"{file}:12: [[player]] 3: the player has no name",
        f"{file}:17: the name 'docs' is used twice",
        f"{file}:18: [[schedule]] 1: say when with exactly one of at, after, every, cron",
        f"{file}:25: [[schedule]] 2: invalid cron expression 'every night'",
        f"{file}:23: [[schedule]] 2: the message is empty",
    ):
        assert expected in errors, errors
    assert "Traceback" not in errors
    # Broken TOML: its line, and nothing started either.
    file.write_text('ensemble = "shop"\n[[player]]\nname = "api\n')
    result = cli("up", "--lineup", str(file), **env)
    assert result.returncode == 1 and result.stdout == ""
    assert f"{file}:3: not valid TOML" in result.stderr and "nothing was started" in result.stderr
    missing = cli("up", "--lineup", str(shop / "absent.toml"), **env)
    assert missing.returncode == 1 and "cannot read the lineup" in missing.stderr
    assert not list(stand_in.glob("*.json"))  # no session was launched
    assert not (cli.home / ".claude-tempo" / "server.json").exists()  # and no server started
    assert tmux(tmux_dir, "list-windows", "-a") == ""


async def test_the_conductor_loads_and_saves_a_lineup_through_its_tools(temporal, ensemble, stand_in, tmux_dir, shop):
    (shop / "team.toml").write_text(
        f'ensemble = "{ensemble}"\n[[player]]\nname = "ui"\ndirectory = "web"\nprompt = "Own the web UI."\n'
        '[[player]]\nname = "docs"\ndirectory = "docs"\nworktree = true\n'
    )
    (shop / "other.toml").write_text('ensemble = "elsewhere"\n')
    env = recruiter_env(stand_in, tmux_dir, CLAUDE_TEMPO_CONDUCTOR="true")
    async with play(temporal, ensemble, cwd=str(shop), **env) as boss:
        loaded = await boss.call("load_lineup", path="team.toml")
        assert loaded["ensemble"] == ensemble
        assert {p["name"]: p["state"] for p in loaded["players"]} == {"ui": "started", "docs": "started"}
        listing = {p["name"]: p for p in (await boss.call("ensemble"))["players"]}
        assert listing["docs"]["worktree"] == str(shop.parent / "shop.tempo" / "docs")
        assert listing["docs"]["branch"] == "tempo/docs" and listing["ui"]["worktree"] == ""
        again = await boss.call("load_lineup", path="team.toml")
        assert {p["name"]: p["state"] for p in again["players"]} == {"ui": "running", "docs": "running"}

        saved = await boss.call("save_lineup", path="saved.toml")
        assert saved["path"] == str(shop / "saved.toml") and sorted(saved["players"]) == ["conductor", "docs", "ui"]
        copy = tempo.read_lineup(shop / "saved.toml")
        assert copy.conductor.directory == str(shop)
        assert sorted((s.name, s.directory, s.worktree) for s in copy.players) == [
            ("docs", str(shop / "docs"), True), ("ui", str(shop / "web"), False)]

        with pytest.raises(ToolFailed, match="lineup of ensemble 'elsewhere'"):
            await boss.call("load_lineup", path="other.toml")
        (shop / "broken.toml").write_text("[[player]]\nname = 'x'\ncolour = 1\n")
        with pytest.raises(ToolFailed, match=r"broken.toml:3: \[\[player\]\] 1: unknown key 'colour'"):
            await boss.call("load_lineup", path="broken.toml")
        with pytest.raises(ToolFailed, match="not valid"):  # a file it cannot read is never overwritten
            await boss.call("save_lineup", path="broken.toml")
        assert (shop / "broken.toml").read_text() == "[[player]]\nname = 'x'\ncolour = 1\n"


def test_all_is_not_a_player_name_in_a_lineup(tmp_path):
    file = tmp_path / "team.toml"
    file.write_text('[[player]]\nname = "all"\n')
    with pytest.raises(tempo.TempoError, match=r"team.toml:2: \[\[player\]\] 1: invalid name 'all'.*'all' are reserved"):
        tempo.read_lineup(file)


def test_a_lineups_conductor_runs_claude_or_codex_never_the_copilot_bridge(tmp_path):
    file = tmp_path / "team.toml"
    file.write_text('[conductor]\nagent = "codex"\n')
    assert tempo.read_lineup(file).conductor.agent == "codex"
    file.write_text('[conductor]\nprompt = "lead"\nagent = "copilot"\n')
    with pytest.raises(tempo.TempoError, match=r"team.toml:3: \[conductor\]: the Copilot bridge is a player only, never the "
                                               r"conductor: use 'claude' or 'codex'"):
        tempo.read_lineup(file)


REAL_LINEUP = """\
ensemble = "{ensemble}"

[conductor]
directory = "."
prompt = "Split the work: {split}"

[[player]]
name = "api"
directory = "services/api"
prompt = "Own the HTTP API."
worktree = true

[[player]]
name = "ui"
directory = "web"
prompt = "Own the web UI."
"""
DIALOGS = ("Enter to confirm", "Do you want", "New MCP server found", "Is this a project you created")


async def test_a_lineup_of_real_claude_code_sessions_works_with_nobody_at_their_windows(temporal, ensemble, shop, tmp_path):
    """`tempo up --lineup` with the real Claude Code: only the repository root trusted, nothing pre-approved,
    `claude` on PATH only through ~/.bash_profile. All join; the conductor's first turn cues all, each
    player's model sees that cue once and reports back to the conductor's model; no window waits on a dialog."""
    import uuid

    from claude_code import CLAUDE, ScriptedModel, calls, claude_binary, claude_home, last_user_text, shown, tool_use

    split = f"SPLIT-{uuid.uuid4().hex[:8]}"
    places = {"conductor": str(shop), "api": str(shop.parent / "shop.tempo" / "api" / "services" / "api"), "ui": str(shop / "web"),
              "docs": str(shop / "docs")}

    def who(body: dict) -> str:
        system = json.dumps(body.get("system", ""))
        return next((n for n, d in places.items() if f"Primary working directory: {d}\\n" in system), "?")

    def reply(body: dict):
        me, seen = who(body), shown(body)
        if me == "conductor" and split in seen and not calls(body, "mcp__claude-tempo__cue"):
            return [tool_use("mcp__claude-tempo__cue", {"to": "all", "message": f"{split}: api takes the API, ui the UI"})]
        if me in ("api", "ui") and f"{split}:" in seen and not calls(body, "mcp__claude-tempo__report"):
            return [tool_use("mcp__claude-tempo__report", {"type": "result", "message": f"REPORT-{me} done"})]
        if me == "conductor" and "REPORT-api done" in seen and "REPORT-ui done" in seen and not calls(body, "mcp__claude-tempo__recruit"):
            return [tool_use("mcp__claude-tempo__recruit", {"name": "docs", "directory": "docs", "prompt": f"DOCS-{split} write them"})]
        return ["ok"]

    claude_binary()
    home, bindir, tmux_home = tmp_path / "home", tmp_path / "claude-bin", tempfile.mkdtemp(prefix="tt-")
    bindir.mkdir()
    (bindir / "claude").symlink_to(CLAUDE)
    with ScriptedModel(reply) as model:
        env = claude_home(home, shop, model)
        state = json.loads((home / ".claude.json").read_text())  # the user trusted the repository root once, no more
        state["projects"] = {str(shop): {"hasTrustDialogAccepted": True}}
        (home / ".claude.json").write_text(json.dumps(state))
        (home / ".bash_profile").write_text(f'export PATH="{bindir}:$PATH"\n')  # as fnm/nvm set it up
        env.update({"SHELL": "/bin/bash", "TEMPORAL_ADDRESS": temporal.address, "CLAUDE_TEMPO_HOME": str(home / ".claude-tempo"),
                    "CLAUDE_TEMPO_TERMINAL": "tmux", "TMUX_TMPDIR": tmux_home, "CLAUDE_TEMPO_RECRUIT_TIMEOUT": "90",
                    "CLAUDE_TEMPO_LOG": "WARNING", "MCP_CONNECT_TIMEOUT_MS": "120000", "MCP_TIMEOUT": "120000"})  # a loaded machine
        file = shop / "team.toml"
        file.write_text(REAL_LINEUP.format(ensemble=ensemble, split=split))
        try:
            up = await asyncio.to_thread(subprocess.run, [sys.executable, str(ROOT / "tempo.py"), "up", "--lineup", str(file)],
                                         env=env, capture_output=True, text=True, timeout=400, cwd=shop)
            assert up.returncode == 0, up.stdout + up.stderr
            assert "✓ conductor joined ensemble" in up.stdout
            assert "✓ player api: joined from" in up.stdout and "✓ player ui: joined from" in up.stdout
            assert "approved tempo's own MCP server (claude-tempo) and its tools (mcp__claude-tempo)" in up.stdout

            def last(name: str, needle: str) -> bool:
                mine = [b for b in model.requests() if who(b) == name]
                return bool(mine) and needle in shown(mine[-1])

            def story() -> str:  # what each model was last shown, each window and the ensemble: why a wait failed
                lines = []
                for name in places:
                    mine = [b for b in model.requests() if who(b) == name]
                    lines.append(f"--- {name}: {len(mine)} requests, the split shown in {sum(split in shown(b) for b in mine)}")
                    lines += [f"  [{i}] {last_user_text(b)[-400:]!r}" for i, b in enumerate(mine)][-4:]
                for pane in tmux(tmux_home, "list-panes", "-a", "-F", "#{pane_id}").split():
                    lines.append(f"--- window {pane}:\n" + tmux(tmux_home, "capture-pane", "-p", "-t", pane).strip()[-1200:])
                listed = subprocess.run([sys.executable, str(ROOT / "tempo.py"), "status", ensemble], env=env,
                                        capture_output=True, text=True, timeout=60)
                return "\n".join(lines) + "\n--- tempo status:\n" + listed.stdout + listed.stderr

            try:
                for name in ("api", "ui"):  # the conductor's first turn reached each player's model ...
                    waiting = f"{name}'s model for the cue"
                    await wait_until(lambda: asyncio.to_thread(last, name, f"{split}:"), timeout=120)
                for name in ("api", "ui"):  # ... and each one's report the conductor's
                    waiting = f"the conductor's model for {name}'s report"
                    await wait_until(lambda: asyncio.to_thread(last, "conductor", f"REPORT-{name} done"), timeout=120)
                # ... and it recruits a player with a prompt from its real session: the new one's model gets it
                waiting = "docs's model for its prompt"
                await wait_until(lambda: asyncio.to_thread(last, "docs", f"DOCS-{split} write them"), timeout=180)
            except AssertionError as e:
                raise AssertionError(f"{e}: {waiting}\n{await asyncio.to_thread(story)}") from None
            await asyncio.sleep(3)  # nothing shows the cue a second time
            for name in ("api", "ui"):
                final = [b for b in model.requests() if who(b) == name][-1]
                assert shown(final).count(f"{split}:") == 1, name
            assert shown([b for b in model.requests() if who(b) == "docs"][-1]).count(f"DOCS-{split} write them") == 1
            conductor = [b for b in model.requests() if who(b) == "conductor"]
            first_cue = next(b for b in conductor if split in shown(b))
            assert calls(first_cue, "mcp__claude-tempo__cue") == 0  # the cue to all was its first turn on the task
            # Channels are off here, and each session's serve can read so in Claude Code's own MCP log (no probe).
            for name, place in places.items():
                logs = home / ".cache" / "claude-cli-nodejs" / re.sub(r"[^A-Za-z0-9]", "-", place) / "mcp-logs-claude-tempo"
                session_id = json.loads(next(logs.glob("*.jsonl")).read_text().splitlines()[0])["sessionId"]
                env_of_serve = {"CLAUDE_CODE_SESSION_ID": session_id, "CLAUDE_PROJECT_DIR": place, "XDG_CACHE_HOME": str(home / ".cache")}
                assert tempo._channel_logged(env_of_serve) == "off", name
            panes = tmux(tmux_home, "list-panes", "-a", "-F", "#{pane_id}").split()
            assert len(panes) == 4
            for pane in panes:
                screen = tmux(tmux_home, "capture-pane", "-p", "-t", pane)
                assert not [d for d in DIALOGS if d in screen], screen
        finally:
            subprocess.run(["tmux", "kill-server"], env={**os.environ, "TMUX_TMPDIR": tmux_home}, capture_output=True)
            shutil.rmtree(tmux_home, ignore_errors=True)


async def test_a_lineups_permission_rules_answer_before_anyone_is_asked(temporal, ensemble, stand_in, tmux_dir, shop):
    """Standing rules for all players and per player reach each session it starts; they answer its agent's
    requests (the real `tempo hook`) with nobody asked, and the conductor's history says which rule did."""
    import uuid

    from tempo_workflows import workflow_id
    from test_conductor import plain_client
    from test_hooks import hook
    from test_permissions import next_permission

    (shop / "team.toml").write_text(
        f'ensemble = "{ensemble}"\npermit_allow = ["Bash(npm test:*)"]\npermit_deny = ["Bash(rm:*)"]\n'
        '[[player]]\nname = "ui"\ndirectory = "web"\npermit_allow = ["Edit(src/**)"]\npermit = true\n'
        '[[player]]\nname = "docs"\ndirectory = "docs"\n')
    env = recruiter_env(stand_in, tmux_dir, CLAUDE_TEMPO_CONDUCTOR="true", CLAUDE_TEMPO_PERMIT_ALLOW="Read")
    async with play(temporal, ensemble, cwd=str(shop), **env) as boss:
        loaded = await boss.call("load_lineup", path="team.toml")
        assert {p["name"]: p["state"] for p in loaded["players"]} == {"ui": "started", "docs": "started"}
        started = {n: json.loads((stand_in / f"{n}.json").read_text())["env"] for n in ("ui", "docs")}
        rules = {n: {k: v for k, v in e.items() if k.startswith("CLAUDE_TEMPO_PERMIT")} for n, e in started.items()}
        assert rules == {  # its own, the lineup's, then the config's the recruiter has
            "ui": {"CLAUDE_TEMPO_PERMIT_ALLOW": "Edit(src/**),Bash(npm test:*),Read", "CLAUDE_TEMPO_PERMIT_DENY": "Bash(rm:*)",
                   "CLAUDE_TEMPO_PERMIT_ANSWERS": "true"},
            "docs": {"CLAUDE_TEMPO_PERMIT_ALLOW": "Bash(npm test:*),Read", "CLAUDE_TEMPO_PERMIT_DENY": "Bash(rm:*)"}}

        # ui's rules at work, in a serve started as Claude Code starts ui's (the stand-in has no hooks).
        sid = str(uuid.uuid4())
        async with play(temporal, ensemble, cwd=str(shop / "web"), CLAUDE_TEMPO_PLAYER_NAME="ui-claude",
                        CLAUDE_CODE_SESSION_ID=sid, **rules["ui"]) as ui:
            await ui.name()

            def ask(tool: str, **tool_input) -> dict:
                said = hook("PermissionRequest", sid, cwd=str(shop / "web"), tool_name=tool, tool_input=tool_input,
                            permission_mode="default")
                assert said.returncode == 0, said.stderr
                return json.loads(said.stdout)["hookSpecificOutput"]["decision"] if said.stdout else {}

            assert await asyncio.to_thread(ask, "Bash", command="npm test -- --watch") == {"behavior": "allow"}
            denied = await asyncio.to_thread(ask, "Bash", command="rm -rf build")
            assert denied["behavior"] == "deny" and "Bash(rm:*)" in denied["message"], denied
            assert await asyncio.to_thread(ask, "Edit", file_path=str(shop / "web" / "src" / "app.js"),
                                           old_string="a", new_string="b") == {"behavior": "allow"}
            # Nothing covers this one: the conductor is asked, and ui (`permit = true`) may answer it too.
            waiting = asyncio.create_task(asyncio.to_thread(ask, "Bash", command="touch ASKED"))
            asked = await next_permission(boss)
            assert "touch ASKED" in asked["content"]
            answered = await ui.call("permit", request_id=asked["meta"]["message_id"], decision="allow")
            assert answered["by"] == "ui-claude"
            assert await asyncio.wait_for(waiting, 30) == {"behavior": "allow"}

        history = await (await plain_client(temporal)).get_workflow_handle(workflow_id(ensemble, "conductor")).query("history")
        assert [(h["sender"], h["text"].split(" for ")[0]) for h in history if h["kind"] == "permit"] == [
            ("rule Bash(npm test:*)", "allow Bash(npm test -- --watch)"), ("rule Bash(rm:*)", "deny Bash(rm -rf build)"),
            ("rule Edit(src/**)", f"allow Edit({shop / 'web' / 'src' / 'app.js'})"), ("ui-claude", "allow Bash(touch ASKED)")]
        assert len([h for h in history if h["kind"] == "permission"]) == 1  # only the uncovered one asked anyone

        await boss.call("save_lineup", path="team.toml")  # saving the team again keeps its rules
        saved = tempo.read_lineup(shop / "team.toml")
        assert (saved.permit_allow, saved.permit_deny) == (["Bash(npm test:*)"], ["Bash(rm:*)"])
        assert {(s.name, tuple(s.permit_allow), s.permit) for s in saved.players if s.name in ("ui", "docs")} == {
            ("ui", ("Edit(src/**)",), True), ("docs", (), False)}


def test_a_lineups_permission_rules_are_checked_by_line(tmp_path):
    file = tmp_path / "team.toml"
    file.write_text('permit_allow = "Bash(npm test:*)"\n[[player]]\nname = "ui"\npermit_deny = ["Bash(rm:*), Read", "Bash(rm"]\n')
    with pytest.raises(tempo.TempoError) as e:
        tempo.read_lineup(file)
    assert "team.toml:1: the lineup: permit_allow must be a list of permission rules" in str(e.value)
    assert "team.toml:4: [[player]] 1: permit_deny: 'Bash(rm:*), Read' is not one permission rule" in str(e.value)
    assert "team.toml:4: [[player]] 1: permit_deny: cannot read the tool pattern 'Bash(rm'" in str(e.value)
