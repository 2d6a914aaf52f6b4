"""The real Codex CLI (its model scripted on loopback) as a tempo player, set up by `tempo init --agent codex`."""

import asyncio
import json
import os
import subprocess
import sys

import pytest

from codex_cli import ScriptedResponses, call, codex_binary, codex_home, outputs_of, run_exec, shell, shown, text, tools
from conftest import ROOT, play, tempo_env, tools_path, wait_until
from test_lineup import shop, stand_in  # noqa: F401  (fixtures: a git repository with a team's directories, a stand-in claude)
from test_recruit import tmux_dir  # noqa: F401  (the fixture: a private tmux server)

pytestmark = pytest.mark.anyio


def init_codex(project, *more: str) -> subprocess.CompletedProcess:
    """`tempo init --agent codex` as a user runs it (this checkout's tempo)."""
    return subprocess.run([sys.executable, str(ROOT / "tempo.py"), "init", "--agent", "codex", "-d", str(project), *more],
                          capture_output=True, text=True, timeout=30)


def test_init_merges_tempo_into_a_projects_codex_files(tmp_path):
    """The user's config keys, comments and hooks stay; tempo's entry and hooks join them; undo takes out only tempo's."""
    codex = tmp_path / ".codex"
    codex.mkdir()
    mine = '# my settings\nmodel = "o3"  # the one I like\n\n[mcp_servers.docs]\ncommand = "docs-server"\n'
    (codex / "config.toml").write_text(mine)
    (codex / "hooks.json").write_text(json.dumps({"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "notify"}]}]}}, indent=4))
    run = init_codex(tmp_path)
    assert run.returncode == 0, run.stderr
    assert "trust_level" in run.stdout and str(tmp_path) in run.stdout  # what to trust is said, ~/.codex left alone
    config = (codex / "config.toml").read_text()
    assert config.startswith(mine)
    import tomllib

    entry = tomllib.loads(config)["mcp_servers"]["claude-tempo"]
    assert entry["required"] is True and entry["startup_timeout_sec"] > 0 and entry["args"][-1] == "serve"
    assert {"CLAUDE_TEMPO_PLAYER_NAME", "TEMPORAL_ADDRESS", "XDG_RUNTIME_DIR"} <= set(entry["env_vars"])
    assert entry["env"] == {"CLAUDE_TEMPO_AGENT": "codex"}
    hooks = json.loads((codex / "hooks.json").read_text())["hooks"]
    assert hooks["Stop"][0]["hooks"][0]["command"] == "notify" and len(hooks["Stop"]) == 2
    assert set(hooks) == {"SessionStart", "UserPromptSubmit", "PostToolUse", "Stop", "PermissionRequest"}
    assert (codex / "hooks.json").read_text().startswith('{\n    "hooks"')  # the file's own indentation
    again = init_codex(tmp_path)
    assert "already configured" in again.stdout and "hooks already installed" in again.stdout
    undo = init_codex(tmp_path, "--undo")
    assert undo.returncode == 0, undo.stderr
    assert (codex / "config.toml").read_text().rstrip() == mine.rstrip()
    assert json.loads((codex / "hooks.json").read_text()) == {"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "notify"}]}]}}
    (codex / "config.toml").write_text("model = \n")
    broken = init_codex(tmp_path)
    assert broken.returncode != 0 and "not valid TOML" in broken.stderr
    assert (codex / "config.toml").read_text() == "model = \n"


async def test_a_codex_player_cues_and_is_cued_mid_turn(tmp_path, temporal, ensemble):
    """`codex exec` in a project `tempo init --agent codex` set up joins as a named player with its agent,
    its model's `cue` call reaches another session, and a cue to it while its model works reaches
    that model before the run ends, whole and once, with a receipt confirmed from Codex's rollout."""
    project = tmp_path / "project"
    project.mkdir()
    assert init_codex(project).returncode == 0
    cue = "codex: the schema moved to v2, rebase first"
    loop = asyncio.get_running_loop()
    async with play(temporal, ensemble) as alice:
        await alice.call("set_name", name="alice")
        seen: dict = {}

        def reply(body):
            if not outputs_of(body, "cue"):  # the model's first move: cue alice
                return [call("cue", {"to": "alice", "message": "hello from codex"})]
            if not outputs_of(body, "exec_command"):  # it works on: alice answers now, mid-turn
                seen["listing"] = asyncio.run_coroutine_threadsafe(alice.call("ensemble"), loop).result(30)
                seen["sent"] = asyncio.run_coroutine_threadsafe(alice.call("cue", to="coder", message=cue), loop).result(30)
                return [shell("sleep 1")]
            return [text("done")]

        with ScriptedResponses(reply) as model:
            env = {**tempo_env(temporal, ensemble, home=tmp_path / "home", CLAUDE_TEMPO_PLAYER_NAME="coder"),
                   **codex_home(tmp_path / "home", project, model, path=tools_path())}
            run = await asyncio.to_thread(run_exec, "say hello to alice", cwd=project, env=env, timeout=90)
            assert run.returncode == 0, run.stderr[-3000:]
            bodies = model.requests()
        assert "mcp__claude_tempo__cue" in tools(bodies[0]), (tools(bodies[0]), run.stderr[-3000:])  # up before the first turn
        heard = await alice.next_cue(timeout=15)
        assert "hello from codex" in heard["content"] and heard["meta"].get("from") == "coder", heard
        coder = next(p for p in seen["listing"]["players"] if p["name"] == "coder")
        assert coder["agent"] == "codex", coder
        message_id = seen["sent"]["message_id"]
        holding = [b for b in bodies if cue in shown(b)]
        assert holding, [shown(b)[-800:] for b in bodies]
        assert shown(bodies[-1]).count(cue) == 1 and shown(bodies[-1]).count(message_id) <= 1  # once
        rows = await wait_until(lambda: _seen(alice, message_id), timeout=15)
        assert rows["path"] in ("hook", "stop"), rows


async def _seen(player, message_id: str):
    rows = (await player.call("receipts", message_ids=[message_id]))["receipts"]
    return rows[0] if rows[0]["state"] == "seen" else None


async def test_recruit_opens_codex_in_tmux_it_joins_gets_its_task_and_is_woken_when_idle(temporal, ensemble, tmux_dir, tmp_path):
    """recruit(agent="codex") opens the real Codex CLI in tmux: it joins under its name with its agent, its
    task reaches its model and its answer reaches the conductor; a cue to it once it idles wakes it."""
    from test_recruit import tmux

    workdir = tmp_path / "work"
    workdir.mkdir()
    bindir = tmp_path / "bin"  # `codex` for the window's PATH: the pinned one, never a user's
    bindir.mkdir()
    (bindir / "codex").symlink_to(codex_binary())
    task, later = "count the TODOs in src/", "now count the FIXMEs"

    def reply(body):
        for words in (later, task):  # answer the newest cue the model was shown, once
            if words in shown(body) and f"got: {words}" not in json.dumps(body.get("input")):
                return [call("cue", {"to": "conductor", "message": f"got: {words}"})]
        return [text("ok")]

    with ScriptedResponses(reply) as model:
        env = {**codex_home(tmp_path / "home", workdir, model), **tempo_env(temporal, ensemble, home=tmp_path / "home"),
               "CLAUDE_TEMPO_TERMINAL": "tmux", "TMUX_TMPDIR": tmux_dir, "SHELL": "/bin/sh",
               "PATH": f"{bindir}{os.pathsep}{tools_path()}", "CLAUDE_TEMPO_RECRUIT_TIMEOUT": "60"}
        async with play(temporal, ensemble, CLAUDE_TEMPO_CONDUCTOR="true", **env) as boss:
            result = await boss.call("recruit", name="helper", directory=str(workdir), prompt=task, agent="codex")
            assert result["agent"] == "codex" and result["terminal"].startswith("tmux"), result
            assert "tempo helper" in tmux(tmux_dir, "list-windows", "-a", "-F", "#{window_name}").splitlines()
            helper = next(p for p in (await boss.call("ensemble"))["players"] if p["name"] == "helper")
            assert helper["agent"] == "codex"
            answer = await _cue_from(boss, "helper", f"got: {task}")
            assert answer["meta"]["from"] == "helper"
            await wait_until(lambda: _idle(tmp_path / "home" / ".codex"), timeout=30)  # its turn has ended
            await boss.call("cue", to="helper", message=later)
            try:
                await _cue_from(boss, "helper", f"got: {later}", timeout=30)
            except TimeoutError:
                raise AssertionError(tmux(tmux_dir, "capture-pane", "-p", "-t", "tempo helper")) from None
            bodies = model.requests()
            woken = [b for b in bodies if later in shown(b)][0]
            assert "new cues for you" in shown(woken) and shown(bodies[-1]).count(later) == 1, [shown(b)[-600:] for b in bodies]


async def _player(listener, name: str):
    return next((p for p in (await listener.call("ensemble"))["players"] if p["name"] == name), None)


def _idle(codex_home) -> bool:
    """Codex's rollout says every turn it started has completed (its Stop hooks have run)."""
    text = "".join(f.read_text() for f in codex_home.glob("sessions/**/rollout-*.jsonl"))
    return text.count('"type":"task_started"') == text.count('"type":"task_complete"') > 0


async def _cue_from(player, sender: str, content: str, timeout: float = 60) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        cue = await player.next_cue(timeout=max(deadline - asyncio.get_running_loop().time(), 0.1))
        if cue["meta"].get("from") == sender and content in cue["content"]:
            return cue


async def test_tempo_start_and_conduct_agent_codex_join_as_codex_players(temporal, ensemble, tmux_dir, tmp_path):
    """`tempo start --agent codex -n NAME` sets up the project's .codex/ and becomes the real Codex CLI, joined as NAME;
    `tempo conduct --agent codex` makes a Codex conductor; `tempo status` shows their agent."""
    from test_recruit import tmux

    workdir = tmp_path / "work"
    workdir.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "codex").symlink_to(codex_binary())
    with ScriptedResponses() as model:
        env = {**os.environ, **codex_home(tmp_path / "home", workdir, model), **tempo_env(temporal, ensemble, home=tmp_path / "home"),
               "TMUX_TMPDIR": tmux_dir, "PATH": f"{bindir}{os.pathsep}{tools_path()}"}
        env.pop("TMUX", None)
        tempo_cli = [sys.executable, str(ROOT / "tempo.py")]
        argv = [*tempo_cli, "start", "--agent", "codex", "-n", "solo", "-d", str(workdir)]
        subprocess.run(["tmux", "new-session", "-d", "-x", "200", "-y", "50", "-s", "solo", *argv], env=env, check=True, timeout=10)
        conduct = [*tempo_cli, "conduct", "--agent", "codex", "-d", str(workdir)]  # a Codex conductor, at the same time
        subprocess.run(["tmux", "new-session", "-d", "-x", "200", "-y", "50", "-s", "lead", *conduct], env=env, check=True, timeout=10)
        async with play(temporal, ensemble) as alice:
            async def solo():
                return next((p for p in (await alice.call("ensemble"))["players"] if p["name"] == "solo"), None)

            try:
                player = await wait_until(solo, timeout=60, interval=0.5)
            except AssertionError:
                raise AssertionError(tmux(tmux_dir, "capture-pane", "-p", "-t", "solo")) from None
            assert player["agent"] == "codex" and player["directory"] == str(workdir), player
            status = subprocess.run([sys.executable, str(ROOT / "tempo.py"), "status", ensemble], env=env, capture_output=True,
                                    text=True, timeout=30).stdout
            assert next(line for line in status.splitlines() if line.startswith("solo ")).split()[1] == "codex", status
            lead = await wait_until(lambda: _player(alice, "conductor"), timeout=60, interval=0.5)
            assert lead["conductor"] and lead["agent"] == "codex", lead
    assert (workdir / ".codex" / "config.toml").exists() and (workdir / ".codex" / "hooks.json").exists()


def test_preflight_agent_codex_checks_codex_its_files_and_trust(temporal, tmp_path):
    project, bindir = tmp_path / "project", tmp_path / "bin"
    project.mkdir()
    bindir.mkdir()
    (bindir / "codex").symlink_to(codex_binary())
    env = {**tempo_env(temporal, "t", home=tmp_path / "home"), "PATH": f"{bindir}{os.pathsep}{tools_path()}",
           "CODEX_HOME": str(tmp_path / "home" / ".codex")}
    argv = [sys.executable, str(ROOT / "tempo.py"), "preflight", "--agent", "codex", "-d", str(project)]
    before = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert before.returncode == 1 and "tempo init --agent codex" in before.stdout and "does not trust" in before.stdout, before.stdout
    assert init_codex(project).returncode == 0
    (tmp_path / "home" / ".codex").mkdir(parents=True)
    (tmp_path / "home" / ".codex" / "config.toml").write_text(f'[projects.{json.dumps(str(project))}]\ntrust_level = "trusted"\n')
    after = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert after.returncode == 0 and "codex-cli 0.171.0" in after.stdout, after.stdout


def test_a_rollout_confirms_only_what_the_model_answered(tmp_path):
    """Codex's rollout: an input item is in a request the model answered only once a model output follows it."""
    import tempo

    rollout = tmp_path / "rollout.jsonl"

    def item(payload):
        with rollout.open("a") as f:
            f.write(json.dumps({"timestamp": "t", "type": "response_item", "payload": payload}) + "\n")

    def message(role, words):
        return {"type": "message", "role": role, "content": [{"type": "input_text", "text": words}]}

    reader = tempo._Rollout(str(rollout))
    item(message("user", "do it"))
    item(message("developer", "CUE-1"))
    assert reader.read() == []  # recorded for a request: not answered yet
    item({"type": "function_call", "name": "exec_command", "arguments": "{}", "call_id": "c"})
    assert reader.read() == ["do it", "CUE-1"]
    item({"type": "function_call_output", "call_id": "c", "output": "ok"})
    item(message("developer", "CUE-2"))
    with rollout.open("a") as f:
        f.write('{"timestamp": "t", "type": "event_msg", "payload": {"type": "task_complete"}}\n{"partial')
    assert reader.read() == []  # the run ended before a request carried it: never seen


async def test_a_lineup_mixing_claude_and_codex_players_starts_and_saves_its_agents(temporal, ensemble, tmux_dir, shop, stand_in, tmp_path):
    """load_lineup with a Claude Code seat (test_recruit's stand-in) and a Codex seat (the real CLI): both join,
    each with its agent, and save_lineup writes `agent = "codex"` back."""
    import tempo
    from test_recruit import recruiter_env

    (stand_in / "codex").symlink_to(codex_binary())
    (shop / "team.toml").write_text(f'ensemble = "{ensemble}"\n[[player]]\nname = "ui"\ndirectory = "web"\n'
                                    '[[player]]\nname = "coder"\ndirectory = "services/api"\nagent = "codex"\nprompt = "Own the API."\n')
    with ScriptedResponses() as model:
        env = {**codex_home(tmp_path / "home", shop, model), **recruiter_env(stand_in, tmux_dir, CLAUDE_TEMPO_CONDUCTOR="true")}
        async with play(temporal, ensemble, cwd=str(shop), **env) as boss:
            loaded = await boss.call("load_lineup", path="team.toml")
            assert {p["name"]: p["state"] for p in loaded["players"]} == {"ui": "started", "coder": "started"}, loaded
            listing = {p["name"]: p for p in (await boss.call("ensemble"))["players"]}
            assert (listing["ui"]["agent"], listing["coder"]["agent"]) == ("claude", "codex")
            await wait_until(lambda: any("Own the API." in shown(b) for b in model.requests()), timeout=30)  # its task reached it
            await boss.call("save_lineup", path="saved.toml")
            saved = {s.name: s.agent for s in tempo.read_lineup(shop / "saved.toml").players}
            assert saved == {"ui": "claude", "coder": "codex"}


async def test_up_with_a_lineup_starts_its_codex_conductor_and_hands_it_its_task(cli, temporal, ensemble, tmux_dir, shop, tmp_path):
    """`tempo up --lineup` whose [conductor] has `agent = "codex"`: the project's .codex/ is set up (no .mcp.json), the
    real Codex CLI opens in tmux as the conductor, its Codex player joins, then the conductor's model gets its task
    (handed over once the player joined); `lineup save` keeps the conductor's agent."""
    import tempo
    from test_recruit import tmux

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "codex").symlink_to(codex_binary())
    task = f"LEAD-{ensemble}: split the work"
    (shop / "team.toml").write_text(f'ensemble = "{ensemble}"\n[conductor]\nagent = "codex"\nprompt = "{task}"\n'
                                    '[[player]]\nname = "web"\ndirectory = "web"\nagent = "codex"\n')
    with ScriptedResponses() as model:
        env = {**codex_home(cli.home, shop, model), "TEMPORAL_ADDRESS": temporal.address, "CLAUDE_TEMPO_TERMINAL": "tmux",
               "TMUX_TMPDIR": tmux_dir, "SHELL": "/bin/sh", "PATH": f"{bindir}{os.pathsep}{tools_path()}",
               "CLAUDE_TEMPO_RECRUIT_TIMEOUT": "60"}
        up = await asyncio.to_thread(cli, "up", "--lineup", str(shop / "team.toml"), timeout=300, **env)
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"✓ {shop / '.codex' / 'config.toml'} created" in up.stdout and not (shop / ".mcp.json").exists(), up.stdout
        assert "✓ conductor joined ensemble" in up.stdout and "✓ player web: joined from" in up.stdout, up.stdout
        assert "✓ conductor's task handed over" in up.stdout
        try:
            body = await wait_until(lambda: next((b for b in model.requests() if task in shown(b)), None), timeout=60)
        except AssertionError:
            panes = tmux(tmux_dir, "list-panes", "-a", "-F", "#{pane_id}").split()
            raise AssertionError("\n".join(tmux(tmux_dir, "capture-pane", "-p", "-t", pane) for pane in panes)) from None
        assert "You are the conductor of the tempo ensemble" in shown(body) and shown(body).count(task) == 1  # its own session, once
        client = await tempo.connect(tempo.Config(address=temporal.address))
        agents = {p.name: (p.role, p.agent) for p in await tempo.list_players(client, ensemble)}
        assert agents == {"conductor": ("conductor", "codex"), "web": ("player", "codex")}, agents
        saved = await asyncio.to_thread(cli, "lineup", "save", str(shop / "team.toml"), ensemble, **env)
        assert saved.returncode == 0, saved.stderr
        again = tempo.read_lineup(shop / "team.toml")
        assert (again.conductor.agent, again.conductor.prompt, [p.agent for p in again.players]) == ("codex", task, ["codex"])


async def test_a_codex_permission_request_is_answered_by_the_conductor(temporal, ensemble, tmux_dir, tmp_path):
    """Codex asking to run a command outside its sandbox (approval on-request): its PermissionRequest hook asks
    the ensemble. The conductor's `permit` deny with a reason: the command does not run and the model's next
    request carries the reason; its allow: the next command runs, with nobody at Codex's window."""
    from test_permissions import next_permission
    from test_recruit import tmux

    workdir = tmp_path / "work"
    workdir.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "codex").symlink_to(codex_binary())

    def escalated(cmd: str) -> dict:
        return call("exec_command", {"cmd": cmd, "sandbox_permissions": "require_escalated", "justification": cmd}, namespace="")

    def reply(body):
        if "make MARKER" in shown(body):
            done = outputs_of(body, "exec_command")
            if not done:
                return [escalated("touch DENIED")]
            if len(done) == 1:
                return [escalated("touch MARKER")]
        return [text("ok")]

    with ScriptedResponses(reply) as model:
        env = {**codex_home(tmp_path / "home", workdir, model, approval="on-request", sandbox="read-only"),
               **tempo_env(temporal, ensemble, home=tmp_path / "home"),
               "CLAUDE_TEMPO_TERMINAL": "tmux", "TMUX_TMPDIR": tmux_dir, "SHELL": "/bin/sh",
               "PATH": f"{bindir}{os.pathsep}{tools_path()}", "CLAUDE_TEMPO_RECRUIT_TIMEOUT": "60"}
        async with play(temporal, ensemble, CLAUDE_TEMPO_CONDUCTOR="true", **env) as boss:
            await boss.call("recruit", name="helper", directory=str(workdir), prompt="make MARKER", agent="codex")
            try:
                asked = await next_permission(boss)
            except TimeoutError:
                raise AssertionError(tmux(tmux_dir, "capture-pane", "-p", "-t", "tempo helper")) from None
            assert (asked["meta"]["from"], asked["meta"]["source"]) == ("helper", "Bash") and "touch DENIED" in asked["content"]
            answered = await boss.call("permit", request_id=asked["meta"]["message_id"], decision="deny", reason="REASON-42: not here")
            assert answered["decision"] == "deny"
            try:
                asked = await next_permission(boss)
            except TimeoutError:
                raise AssertionError(tmux(tmux_dir, "capture-pane", "-p", "-t", "tempo helper")) from None
            assert "touch MARKER" in asked["content"], asked
            denied = outputs_of(model.requests()[-1], "exec_command")
            assert len(denied) == 1 and "REASON-42: not here" in denied[0], denied  # the model read the reason
            assert not (workdir / "DENIED").exists() and not (workdir / "MARKER").exists()
            answered = await boss.call("permit", request_id=asked["meta"]["message_id"], decision="allow")
            assert answered["decision"] == "allow"
            await wait_until(lambda: (workdir / "MARKER").exists(), timeout=30)
            assert not (workdir / "DENIED").exists()


async def test_an_idle_codex_outside_tmux_is_woken_by_codex_queue(temporal, ensemble, tmux_dir, tmp_path):
    """The real Codex TUI started with no TMUX/TMUX_PANE in its environment (tempo cannot type at its prompt: as
    in any other terminal) finishes its first turn and idles; a cue to it reaches its model through `codex queue`
    (2-10 s with hooks in 0.171), once, and its receipt says seen."""
    from test_recruit import tmux

    workdir = tmp_path / "work"
    workdir.mkdir()
    assert init_codex(workdir).returncode == 0
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "codex").symlink_to(codex_binary())
    cue = "idle codex: the build is green, carry on"
    with ScriptedResponses() as model:
        env = {**os.environ, **codex_home(tmp_path / "home", workdir, model), **tempo_env(temporal, ensemble, home=tmp_path / "home"),
               "CLAUDE_TEMPO_PLAYER_NAME": "solo", "TMUX_TMPDIR": tmux_dir, "PATH": f"{bindir}{os.pathsep}{tools_path()}"}
        env.pop("TMUX", None)
        argv = ["env", "-u", "TMUX", "-u", "TMUX_PANE", "codex", "--no-alt-screen", "--dangerously-bypass-hook-trust", "say hi"]
        subprocess.run(["tmux", "new-session", "-d", "-x", "200", "-y", "50", "-s", "solo", "-c", str(workdir), *argv],
                       env=env, check=True, timeout=10)
        async with play(temporal, ensemble) as alice:
            try:
                await wait_until(lambda: _player(alice, "solo"), timeout=60, interval=0.5)
                await wait_until(lambda: _idle(tmp_path / "home" / ".codex"), timeout=60)  # its first turn has ended
            except AssertionError:
                raise AssertionError(tmux(tmux_dir, "capture-pane", "-p", "-t", "solo")) from None
            sent = await alice.call("cue", to="solo", message=cue)
            try:
                await wait_until(lambda: any(cue in shown(b) for b in model.requests()), timeout=45, interval=0.1)
            except AssertionError:
                raise AssertionError(tmux(tmux_dir, "capture-pane", "-p", "-t", "solo")) from None
            woken = next(b for b in model.requests() if cue in shown(b))
            assert "new cues for you" in shown(woken) and shown(woken).count(cue) == 1, shown(woken)[-1500:]
            row = await wait_until(lambda: _seen(alice, sent["message_id"]), timeout=15)
            assert row["path"] in ("hook", "stop"), row
