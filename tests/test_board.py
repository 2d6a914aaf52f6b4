"""The task board and file reservations: real `tempo serve` sessions on a real dev server.

Claims are Updates with validators on one BoardWorkflow per ensemble, so concurrent claims of
one task have exactly one winner; a claimant that dies gives its claims back (the conductor hears
it once); reservations are shared by the worktrees of one repository and expire.
"""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest
from temporalio import workflow

import tempo
from conftest import ROOT, ToolFailed, play, tempo_env, wait_until

pytestmark = pytest.mark.anyio


def git_repo(path):
    """A repository with one commit, and a second worktree of it."""
    path.mkdir()
    for args in (["init", "-q", "-b", "main"], ["config", "user.email", "t@t"], ["config", "user.name", "t"]):
        subprocess.run(["git", "-C", str(path), *args], check=True)
    (path / "src").mkdir()
    (path / "src" / "app.py").write_text("x = 1\n")
    subprocess.run(["git", "-C", str(path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-qm", "one"], check=True)
    other = path.parent / f"{path.name}-wt"
    subprocess.run(["git", "-C", str(path), "worktree", "add", "-q", "-b", "side", str(other)], check=True)
    return path, other


async def claim_or_why(player, **args):
    try:
        return await player.call("task_claim", **args)
    except ToolFailed as e:
        return str(e)


async def test_twenty_sessions_racing_for_one_task_have_exactly_one_winner(temporal, ensemble):
    async with contextlib.AsyncExitStack() as stack:
        players = [await stack.enter_async_context(play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME=f"p{n}")) for n in range(1, 21)]
        await asyncio.gather(*(p.call("ensemble") for p in players))  # all twenty joined
        p1, p2, p3 = players[:3]
        added = await p1.call("task_add", tasks=[{"title": "fix the parser", "details": "tests/test_parse.py fails"}])
        task = added["tasks"][0]
        assert (task["id"], task["state"]) == ("1", "open")
        answers = await asyncio.gather(*(claim_or_why(p, id=task["id"]) for p in players))
        won = [a for a in answers if isinstance(a, dict)]
        assert len(won) == 1, answers
        winner = won[0]["by"]
        lost = [a for a in answers if isinstance(a, str)]
        assert len(lost) == 19 and all(f"claimed by {winner}" in a for a in lost), lost
        board = await p2.call("tasks", state="claimed")
        assert [(t["id"], t["by"]) for t in board["tasks"]] == [("1", winner)]
        listing = {p["name"]: p for p in (await p2.call("ensemble"))["players"]}
        assert listing[winner].get("tasks") == ["1"] and not listing["p2" if winner != "p2" else "p1"].get("tasks"), listing

        # the CLI: the same board
        env = {**os.environ, **tempo_env(temporal, ensemble)}
        added = subprocess.run([sys.executable, str(ROOT / "tempo.py"), "task", "add", "review the fix", "--role", "role:p3",
                                "--after", "1"], env=env, capture_output=True, text=True, timeout=60)
        assert added.returncode == 0 and "added task 2" in added.stdout, added.stderr
        listed = subprocess.run([sys.executable, str(ROOT / "tempo.py"), "tasks"], env=env, capture_output=True, text=True, timeout=60)
        lines = listed.stdout.splitlines()
        assert lines[0].split() == ["ID", "STATE", "BY", "ROLE", "AFTER", "TITLE"], listed.stdout + listed.stderr
        assert lines[1].split()[:3] == ["1", "claimed", winner] and lines[2].split() == ["2", "open", "p3", "1", "review", "the", "fix"]

        # a long board is listed a page at a time, with the counts of the whole board; the CLI lists all
        await p3.call("task_add", tasks=[{"title": f"chore {n}"} for n in range(55)])
        first = await p3.call("tasks")
        assert (len(first["tasks"]), first["total"], first["counts"]) == (tempo.TASKS_PAGE, 57, {"open": 56, "claimed": 1})
        assert "offset=50" in first["more"] and first["tasks"][0]["id"] == "1", first["more"]
        rest = await p3.call("tasks", offset=50)
        assert [t["title"] for t in rest["tasks"]] == [f"chore {n}" for n in range(48, 55)] and not rest.get("more")
        assert (await p3.call("tasks", state="open", role="p3"))["tasks"][0]["id"] == "2"
        listed = subprocess.run([sys.executable, str(ROOT / "tempo.py"), "tasks"], env=env, capture_output=True, text=True, timeout=60)
        assert len(listed.stdout.splitlines()) == 1 + 57, listed.stdout


@workflow.defn(sandboxed=False)
class Gate:
    """A workflow whose updates stay in flight until it is opened: the server's in-flight limit, seen bare."""

    def __init__(self) -> None:
        self.opened = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.opened and workflow.all_handlers_finished())

    @workflow.signal
    def open(self) -> None:
        self.opened = True

    @workflow.update
    async def wait(self) -> None:
        await workflow.wait_condition(lambda: self.opened)


async def test_a_dev_server_tempo_starts_admits_twenty_claims_in_flight_at_once(temporal):
    """Temporal refuses an update past 10 in flight per workflow by default (RESOURCE_EXHAUSTED, which the
    SDK then retries after ~1 s); the dev server tempo starts admits DEV_SERVER_UPDATES_IN_FLIGHT."""
    import uuid

    from temporalio.api.common.v1 import Payloads, WorkflowExecution
    from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage
    from temporalio.api.update.v1 import Input, Meta, Request, WaitPolicy
    from temporalio.api.workflowservice.v1 import UpdateWorkflowExecutionRequest
    from temporalio.service import RPCError
    from temporalio.worker import Worker

    client = await tempo.connect(tempo.Config(address=temporal.address))
    queue, wid = f"gate-{uuid.uuid4().hex[:6]}", f"gate-{uuid.uuid4().hex[:6]}"
    async with Worker(client, task_queue=queue, workflows=[Gate]):
        handle = await client.start_workflow(Gate.run, id=wid, task_queue=queue)

        async def admitted(n: int) -> str:
            request = UpdateWorkflowExecutionRequest(
                namespace=client.namespace, workflow_execution=WorkflowExecution(workflow_id=wid),
                wait_policy=WaitPolicy(lifecycle_stage=UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ACCEPTED),
                request=Request(meta=Meta(update_id=f"u{n}", identity="test"), input=Input(name="wait", args=Payloads())))
            try:  # no retry: a refusal is seen as it is
                await client.workflow_service.update_workflow_execution(request, retry=False)
                return "accepted"
            except RPCError as e:
                return f"{e.status.name}: {e.message}"

        answers = await asyncio.gather(*(admitted(n) for n in range(20)))
        assert answers == ["accepted"] * 20, answers
        await handle.signal(Gate.open)
        await handle.result()


async def test_a_task_waits_for_its_prerequisites_and_its_role_hears_once(temporal, ensemble, tmp_path):
    async with play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="dev") as dev, \
            play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="reviewer-1") as rev:
        await rev.call("ensemble")
        added = await dev.call("task_add", tasks=[{"title": "write it"}, {"title": "review it", "after": ["1"], "role": "role:reviewer"}])
        assert [t["id"] for t in added["tasks"]] == ["1", "2"]
        assert "waits for task(s) 1 (open)" in await claim_or_why(rev, id="2")
        assert (await dev.call("task_claim"))["id"] == "1"
        assert "no open task you may take (1 open: 2: task 2 waits for task(s) 1 (claimed)" in await claim_or_why(rev)
        await dev.call("task_done", id="1", result="commit abc123")
        assert "task 2 is for role 'reviewer'" in await claim_or_why(dev, id="2")
        cue = await rev.next_cue()
        assert "ready to claim" in cue["content"] and "2: review it" in cue["content"]
        got = await rev.call("task_claim")
        assert (got["id"], got["by"]) == ("2", "reviewer-1")
        with pytest.raises(asyncio.TimeoutError):  # one cue, not a storm
            await rev.next_cue(timeout=1.5)
        mine = await rev.call("tasks", mine=True)
        assert [t["id"] for t in mine["tasks"]] == ["2"]

        # a lineup's [[task]] tables join the board once
        lineup = tmp_path / "team.toml"
        lineup.write_text('[[task]]\nid = "docs"\ntitle = "write the docs"\n\n[[task]]\ntitle = "publish"\nafter = ["docs"]\n')
        started = await dev.call("load_lineup", path=str(lineup))
        assert started["players"] == [{"name": "tasks", "state": "started", "detail": "added 2: docs, 3"}]
        again = await dev.call("load_lineup", path=str(lineup))
        assert again["players"][0]["state"] == "running"
        board = (await dev.call("tasks", state="open"))["tasks"]
        assert [(t["id"], t["title"], t.get("after", [])) for t in board] == [("docs", "write the docs", []), ("3", "publish", ["docs"])]


async def test_a_claimant_killed_gives_its_task_back_and_the_conductor_hears_once(temporal, ensemble):
    quick = {"CLAUDE_TEMPO_POLL_WAIT": "2"}
    async with play(temporal, ensemble, CLAUDE_TEMPO_CONDUCTOR="1") as conductor, \
            play(temporal, ensemble, CLAUDE_TEMPO_PLAYER_NAME="doomed", **quick) as doomed:
        await conductor.call("task_add", tasks=[{"title": "port the CLI"}, {"title": "write docs"}])
        assert (await doomed.call("task_claim", id="1"))["by"] == "doomed"
        client = await tempo.connect(tempo.Config(address=temporal.address))
        found = await tempo.find_player(client, ensemble, "doomed")
        killed = time.monotonic()
        os.kill(found[1].pid, signal.SIGKILL)
        while "open again" not in (cue := await conductor.next_cue(timeout=30))["content"]:
            assert cue["meta"]["kind"] in ("joined", "notice"), cue  # its join notice, the news that it left
        took = time.monotonic() - killed
        assert "doomed" in cue["content"] and "1: port the CLI" in cue["content"] and "open again" in cue["content"], cue
        assert took < 2 + 2 + 8, took  # its poll's end, the grace, a workflow task or two
        open_ = await conductor.call("tasks", state="open")
        assert [t["id"] for t in open_["tasks"]] == ["1", "2"]
        later = []
        with contextlib.suppress(asyncio.TimeoutError):
            while True:
                later.append((await conductor.next_cue(timeout=2))["content"])
        assert not [c for c in later if "open again" in c], later  # told once
        assert not (await conductor.call("reservations"))["reservations"]


async def test_the_board_survives_a_server_restart(own_server, ensemble, tmp_path):
    import uuid

    from test_hooks import hook

    loop = asyncio.get_running_loop()
    main, _ = git_repo(tmp_path / "repo")
    sid = str(uuid.uuid4())

    def edit():  # another session's hook: its copy of the reservations is dropped with its failed poll, then read again
        return hook("PreToolUse", sid, cwd=str(main), tool_name="Write", tool_input={"file_path": str(main / "src" / "app.py")}).stdout

    async with play(own_server, ensemble, CLAUDE_TEMPO_PLAYER_NAME="keeper", cwd=str(main)) as keeper, \
            play(own_server, ensemble, CLAUDE_TEMPO_PLAYER_NAME="editor", CLAUDE_CODE_SESSION_ID=sid, cwd=str(main)) as editor:
        await keeper.call("task_add", tasks=[{"title": "a"}, {"title": "b", "after": ["1"]}])
        await keeper.call("task_claim", id="1")
        await keeper.call("reserve", paths=["src/**"], reason="kept across the restart")
        await editor.call("ensemble")
        assert "kept across the restart" in await wait_until(lambda: asyncio.to_thread(edit), timeout=10)
        await loop.run_in_executor(None, own_server.stop)
        await loop.run_in_executor(None, own_server.start)

        async def board():
            try:
                return (await keeper.call("tasks"))["tasks"]
            except ToolFailed:
                return None

        tasks = await wait_until(board, timeout=60, interval=0.5)
        assert [(t["id"], t["state"], t.get("by", "")) for t in tasks] == [("1", "claimed", "keeper"), ("2", "open", "")]
        assert (await keeper.call("task_done", id="1", result="ok"))["state"] == "done"
        assert (await keeper.call("task_claim"))["id"] == "2"
        assert "kept across the restart" in await asyncio.to_thread(edit)
        await keeper.call("release")
        assert await wait_until(lambda: asyncio.to_thread(lambda: edit() == ""), timeout=30)


async def test_reservations_are_shared_by_worktrees_and_expire(temporal, ensemble, tmp_path):
    main, other = git_repo(tmp_path / "repo")
    async with play(temporal, ensemble, cwd=str(main), CLAUDE_TEMPO_PLAYER_NAME="holder") as holder, \
            play(temporal, ensemble, cwd=str(other), CLAUDE_TEMPO_PLAYER_NAME="editor") as editor:
        made = await holder.call("reserve", paths=["src/app.py"], reason="refactoring the parser")
        assert [(r["path"], r["holder"], r["exclusive"]) for r in made["reservations"]] == [("src/app.py", "holder", True)]
        seen = (await editor.call("reservations"))["reservations"]  # from the other worktree
        assert [(r["path"], r["holder"]) for r in seen] == [("src/app.py", "holder")]
        with pytest.raises(ToolFailed, match="reserved exclusively by holder since .* \\(refactoring the parser\\)"):
            await editor.call("reserve", paths=["src/*.py"])
        shared = await editor.call("reserve", paths=["docs/**"], exclusive=False, ttl="2s")
        assert shared["reservations"][0]["expires"]
        both = {r["path"] for r in (await holder.call("reservations"))["reservations"]}
        assert both == {"src/app.py", "docs/**"}
        listing = {p["name"]: p for p in (await holder.call("ensemble"))["players"]}
        assert (listing["holder"]["reserved"], listing["editor"]["reserved"]) == (["src/app.py!"], ["docs/**"])
        env = {**os.environ, **tempo_env(temporal, ensemble)}
        status = subprocess.run([sys.executable, str(ROOT / "tempo.py"), "status", ensemble], env=env,
                                capture_output=True, text=True, timeout=60)
        assert status.stdout.splitlines()[2].split()[-1] == "HOLDS", status.stdout + status.stderr
        assert any(line.startswith("holder") and line.endswith("src/app.py!") for line in status.stdout.splitlines()), status.stdout
        gone = await wait_until(async_lambda(lambda: holder.call("reservations"),
                                             lambda r: {x["path"] for x in r["reservations"]} == {"src/app.py"}), timeout=10)
        assert gone
        released = await holder.call("release")
        assert [r["path"] for r in released["reservations"]] == ["src/app.py"]
        assert (await editor.call("reserve", paths=["src/*.py"]))["reservations"][0]["path"] == "src/*.py"
    # the holder ended: its reservations went with it
    async with play(temporal, ensemble, cwd=str(main), CLAUDE_TEMPO_PLAYER_NAME="later") as later:
        assert (await later.call("reservations"))["reservations"] == []


async def test_a_sessions_hook_follows_reservations_the_board_pushes(temporal, ensemble, tmp_path):
    """The hook judges an edit by the session's copy of the reservations, which the board pushes (no
    board query per edit): another player's reservation taken after the editor joined is denied, a
    shared one warns until its TTL ends (no push needed), a release lets the edit through."""
    import uuid

    from test_hooks import hook

    main, other = git_repo(tmp_path / "repo")
    sid = str(uuid.uuid4())

    def edit(path):
        return hook("PreToolUse", sid, cwd=str(other), tool_name="Edit", tool_input={"file_path": str(other / path)}).stdout

    async with play(temporal, ensemble, cwd=str(main), CLAUDE_TEMPO_PLAYER_NAME="holder") as holder, \
            play(temporal, ensemble, cwd=str(other), CLAUDE_CODE_SESSION_ID=sid, CLAUDE_TEMPO_PLAYER_NAME="editor") as editor:
        await editor.call("ensemble")
        assert await asyncio.to_thread(edit, "src/app.py") == ""
        await holder.call("reserve", paths=["src/app.py"], reason="renaming x")
        denied = await wait_until(lambda: asyncio.to_thread(edit, "src/app.py"), timeout=10)
        assert '"deny"' in denied and "reserved exclusively by holder for 'renaming x'" in denied, denied
        await holder.call("reserve", paths=["docs/**"], exclusive=False, ttl="3s")
        warned = await wait_until(lambda: asyncio.to_thread(edit, "docs/a.md"), timeout=10)
        assert "holder also works on docs/a.md" in warned and '"deny"' not in warned, warned
        assert await wait_until(lambda: asyncio.to_thread(lambda: edit("docs/a.md") == ""), timeout=10)  # its TTL ended
        await holder.call("release")
        assert await wait_until(lambda: asyncio.to_thread(lambda: edit("src/app.py") == ""), timeout=10)


def async_lambda(call, check):
    async def run():
        value = await call()
        return value if check(value) else None
    return run


# -- enforced where the model edits: the real Claude Code, its model scripted ---------------------


@pytest.fixture
def model():
    from claude_code import ScriptedModel

    with ScriptedModel() as scripted:
        yield scripted


def edit_app(path):
    """A model that reads `path`, edits it, then says what it got."""
    from claude_code import tool_use

    def reply(body):
        asked = [m for m in body["messages"] if m["role"] == "assistant"]
        if len(asked) == 0:
            return [tool_use("Read", {"file_path": str(path)})]
        if len(asked) == 1:
            return [tool_use("Edit", {"file_path": str(path), "old_string": "x = 1", "new_string": "x = 2"})]
        return ["done"]

    return reply


async def test_claude_codes_edit_of_a_file_another_player_reserved_is_denied_naming_the_holder(tmp_path, temporal, ensemble, model):
    from claude_code import run_print, shown
    from test_claude_code import make_project

    directory, env = make_project(tmp_path, temporal, ensemble, model, CLAUDE_TEMPO_PLAYER_NAME="carol")
    init = subprocess.run([sys.executable, str(ROOT / "tempo.py"), "init", "-d", str(directory)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    for args in (["init", "-q"], ["config", "user.email", "t@t"], ["config", "user.name", "t"]):
        subprocess.run(["git", "-C", str(directory), *args], check=True)
    app = directory / "src" / "app.py"
    app.parent.mkdir()
    app.write_text("x = 1\n")
    subprocess.run(["git", "-C", str(directory), "add", "src"], check=True)
    subprocess.run(["git", "-C", str(directory), "commit", "-qm", "one"], check=True)
    allow = ["--allowedTools", "mcp__claude-tempo", "Read", "Edit"]
    async with play(temporal, ensemble, cwd=str(directory), CLAUDE_TEMPO_PLAYER_NAME="alice") as alice:
        await alice.call("reserve", paths=["src/*.py"], reason="renaming x everywhere")
        model.reply = edit_app(app)
        run = await asyncio.to_thread(run_print, "change x to 2", cwd=directory, env=env, args=allow, timeout=90)
        assert run.returncode == 0, run.stderr
        after_edit = shown(model.requests()[-1])
        assert "src/app.py is reserved exclusively by alice for 'renaming x everywhere'" in after_edit, after_edit[-1500:]
        assert "ask alice with the `cue` tool" in after_edit
        assert app.read_text() == "x = 1\n"

        await alice.call("release")
        before = len(model.requests())
        run = await asyncio.to_thread(run_print, "change x to 2", cwd=directory, env=env, args=allow, timeout=90)
        assert run.returncode == 0, run.stderr
        assert app.read_text() == "x = 2\n"
        assert "reserved exclusively" not in shown(model.requests()[-1]) and len(model.requests()) > before


def test_a_lineups_tasks_are_checked_by_line(tmp_path):
    file = tmp_path / "team.toml"
    file.write_text('[[task]]\nid = "a"\ntitle = "one"\n\n[[task]]\ntitle = "two"\nafter = ["a", "zz"]\n\n'
                    '[[task]]\ntitle = "three"\nrole = "no such role!"\n\n[[task]]\ndetails = "no title"\n')
    with pytest.raises(tempo.TempoError) as failed:
        tempo.read_lineup(file)
    said = str(failed.value)
    assert "team.toml:7: [[task]] 2: after names task(s) the lineup does not have: zz" in said
    assert "team.toml:11: [[task]] 3: invalid role 'no such role!'" in said
    assert "team.toml:13: [[task]] 4: the task has no title" in said
    file.write_text('[[task]]\nid = "a"\ntitle = "one"\n\n[[task]]\ntitle = "two"\nafter = ["a"]\nrole = "role:reviewer"\n')
    assert [t["title"] for t in tempo.read_lineup(file).tasks] == ["one", "two"]


def test_the_git_guard_refuses_a_commit_of_files_another_player_holds(temporal, ensemble, tmp_path):
    """`tempo init --git-guard` with real git: a commit from another worktree of a file a real session
    reserved is refused (naming the holder), the holder's own checkout commits it, a release lets it
    through; a user's own hook (a symlink here) is never overwritten; init twice changes nothing."""
    repo, other = git_repo(tmp_path / "repo")
    env = {**os.environ, **tempo_env(temporal, ensemble), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("CLAUDE_TEMPO_PLAYER_NAME", None)

    def tempo_cli(*args, cwd=repo):
        return subprocess.run([sys.executable, str(ROOT / "tempo.py"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)

    def commit(where, text, path="src/app.py"):
        (where / path).write_text(text)
        subprocess.run(["git", "-C", str(where), "add", path], check=True)
        return subprocess.run(["git", "-C", str(where), "commit", "-qm", text], env=env, capture_output=True, text=True, timeout=60)

    # a user's own hook (a symlink to a script of theirs) stays as it is, and init says what to add
    theirs = git_repo(tmp_path / "theirs")[0]
    (tmp_path / "my-hook").write_text("#!/bin/sh\nexit 0\n")
    os.symlink(tmp_path / "my-hook", theirs / ".git" / "hooks" / "pre-commit")
    refused = tempo_cli("init", "--git-guard", "--no-approve", cwd=theirs)
    assert refused.returncode == 1 and "guard || exit 1" in refused.stderr, refused.stdout + refused.stderr
    assert os.readlink(theirs / ".git" / "hooks" / "pre-commit") == str(tmp_path / "my-hook")
    assert (tmp_path / "my-hook").read_text() == "#!/bin/sh\nexit 0\n"
    assert "left as it is" in tempo_cli("init", "--undo", "--git-guard", cwd=theirs).stdout
    assert os.path.islink(theirs / ".git" / "hooks" / "pre-commit")

    installed = tempo_cli("init", "--git-guard", "--no-approve")
    assert installed.returncode == 0 and "git guard installed" in installed.stdout, installed.stdout + installed.stderr
    hook = repo / ".git" / "hooks" / "pre-commit"
    script = hook.read_text()
    again = tempo_cli("init", "--git-guard", "--no-approve")
    assert "git guard already installed" in again.stdout and hook.read_text() == script, again.stdout

    async def held_and_released():
        # under a parent of its own, as Claude Code starts it (the guard knows a session's commits by that parent)
        script = f"import subprocess, sys; sys.exit(subprocess.call([sys.executable, {str(ROOT / 'tempo.py')!r}, 'serve']))"
        async with play(temporal, ensemble, command=(sys.executable, ["-c", script]), cwd=str(repo),
                        CLAUDE_TEMPO_PLAYER_NAME="holder") as holder:
            await holder.call("reserve", paths=["src/app.py"], reason="the parser rewrite")
            # another worktree (nobody plays there): refused, naming the holder and the reason
            no = await asyncio.to_thread(commit, other, "y = 2\n")
            assert no.returncode != 0 and "reserved exclusively by holder for 'the parser rewrite'" in no.stderr, no.stdout + no.stderr
            assert "y = 2" not in subprocess.run(["git", "-C", str(other), "show", "HEAD:src/app.py"], capture_output=True, text=True).stdout
            # unstaged as the guard says, a file nobody holds commits; the holder's own checkout commits the held one
            subprocess.run(["git", "-C", str(other), "restore", "--staged", "src/app.py"], check=True)
            ok = await asyncio.to_thread(commit, other, "notes\n", "NOTES.md")
            assert ok.returncode == 0, ok.stderr
            mine = await asyncio.to_thread(commit, repo, "x = 3\n")
            assert mine.returncode == 0, mine.stderr
            await holder.call("release")
            yes = await asyncio.to_thread(commit, other, "y = 2\n")
            assert yes.returncode == 0, yes.stderr

    asyncio.run(held_and_released())
    undone = tempo_cli("init", "--undo", "--git-guard")
    assert "tempo's git guard removed" in undone.stdout and not hook.exists(), undone.stdout
