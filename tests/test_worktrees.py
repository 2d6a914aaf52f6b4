"""Worktrees: a recruited player gets its own git worktree on branch tempo/<name>; pruning keeps work.

Real dev server, real tmux on a private socket directory, stand-in `claude` executables that join
through MCP (test_lineup's, which do not echo a conductor), real git repositories.
"""

import json

import pytest

from conftest import ToolFailed, play
from test_lineup import git, shop, stand_in  # noqa: F401 (fixtures)
from test_recruit import recruiter_env, tmux_dir  # noqa: F401 (fixtures)

pytestmark = pytest.mark.anyio

COMMIT = ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm"]


async def test_worktrees_on_their_branches_and_a_dirty_one_kept_on_prune(cli, temporal, ensemble, stand_in, tmux_dir, shop):
    env = recruiter_env(stand_in, tmux_dir, CLAUDE_TEMPO_CONDUCTOR="true")
    git(shop, "checkout", "-q", "-b", "feature")  # the recruiter's HEAD is where the branches start
    (shop / "web" / "app.js").write_text("v2\n")
    git(shop, "add", ".")
    git(shop, *COMMIT, "feature work")
    head = git(shop, "rev-parse", "HEAD")
    home = shop.parent / "shop.tempo"
    async with play(temporal, ensemble, cwd=str(shop), **env) as boss:
        made = {}
        for name, directory in (("api", "services/api"), ("ui", "web"), ("docs", ".")):
            made[name] = await boss.call("recruit", name=name, directory=directory, worktree=True, prompt=f"own {directory}")
        assert made["api"]["worktree"] == str(home / "api")
        assert made["api"]["directory"] == str(home / "api" / "services/api")
        assert made["docs"]["directory"] == str(home / "docs")
        assert "on new branch tempo/api from" in made["api"]["setup"]
        for name in ("api", "ui", "docs"):
            assert git(home / name, "symbolic-ref", "--short", "HEAD") == f"tempo/{name}"
            assert git(home / name, "rev-parse", "HEAD") == head
        assert (home / "ui" / "web" / "app.js").read_text() == "v2\n"  # the recruiter's work, not main's
        record = json.loads((stand_in / "api.json").read_text())
        assert record["cwd"] == str(home / "api" / "services/api")  # the session runs in its worktree

        listing = {p["name"]: p for p in (await boss.call("ensemble"))["players"]}
        for name in ("api", "ui", "docs"):
            assert (listing[name]["worktree"], listing[name]["branch"]) == (str(home / name), f"tempo/{name}")
        assert (listing["conductor"]["worktree"], listing["conductor"]["branch"]) == ("", "feature")
        # `repo` scope: the worktrees are the same repository as the conductor's checkout
        assert {p["name"] for p in (await boss.call("ensemble", scope="repo"))["players"]} == {"conductor", "api", "ui", "docs"}

        # Work: api leaves a change uncommitted, ui commits on its branch, docs does nothing.
        (home / "api" / "services/api" / "server.py").write_text("print('hi')\n")
        (home / "ui" / "web" / "app.js").write_text("v3\n")
        git(home / "ui", *COMMIT, "ui work", "-a")

        listed = cli("worktrees", cwd=shop, TEMPORAL_ADDRESS=temporal.address)
        assert listed.returncode == 0, listed.stderr
        rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
        assert f"api in {ensemble}" in rows["api"] and "1 uncommitted change" in rows["api"]
        assert "1 commit only on its branch" in rows["ui"] and "clean" in rows["docs"]
        # Nothing is pruned while its player plays.
        assert "removed" not in cli("worktrees", "prune", cwd=shop, TEMPORAL_ADDRESS=temporal.address).stdout

        for name in ("api", "ui", "docs"):  # ending a player never deletes its worktree
            await boss.call("terminate", name=name)
            assert (home / name).is_dir()

    pruned = cli("worktrees", "prune", cwd=shop, TEMPORAL_ADDRESS=temporal.address)
    assert pruned.returncode == 0, pruned.stderr
    rows = {line.split()[0]: line for line in pruned.stdout.splitlines()[1:]}
    assert "gone" in rows["docs"] and "removed" in rows["docs"]
    assert "kept: 1 uncommitted change" in rows["api"] and "kept: 1 commit only on its branch" in rows["ui"]
    assert not (home / "docs").exists() and git(shop, "branch", "--list", "tempo/docs") == ""
    assert (home / "api" / "services/api" / "server.py").read_text() == "print('hi')\n"
    assert git(shop, "log", "-1", "--format=%s", "tempo/ui") == "ui work"

    # Merged work is safe: once feature has ui's commit, ui's worktree (clean) goes on the next prune.
    git(shop, "merge", "-q", "--ff-only", "tempo/ui")
    again = cli("worktrees", "prune", cwd=shop, TEMPORAL_ADDRESS=temporal.address)
    assert "removed" in {line.split()[0]: line for line in again.stdout.splitlines()[1:]}["ui"]
    assert sorted(p.name for p in home.iterdir()) == ["api"]


async def test_a_worktree_needs_a_repository_and_a_kept_one_is_taken_up_again(cli, temporal, ensemble, stand_in, tmux_dir, shop, tmp_path):
    env = recruiter_env(stand_in, tmux_dir)
    plain = tmp_path / "plain"
    plain.mkdir()
    async with play(temporal, ensemble, cwd=str(shop), **env) as boss:
        with pytest.raises(ToolFailed, match="is not in a git repository"):
            await boss.call("recruit", name="x", directory=str(plain), worktree=True)
        first = await boss.call("recruit", name="api", directory="services/api", worktree=True)
        (shop.parent / "shop.tempo" / "api" / "notes.txt").write_text("keep me\n")
        await boss.call("terminate", name="api")
        second = await boss.call("recruit", name="api", directory="services/api", worktree=True)
        assert second["directory"] == first["directory"] and "reused worktree" in second["setup"]
        assert (shop.parent / "shop.tempo" / "api" / "notes.txt").read_text() == "keep me\n"
    # Without Temporal nobody can tell whose player is gone: prune removes nothing.
    blind = cli("worktrees", "prune", cwd=shop, TEMPORAL_ADDRESS="127.0.0.1:1")
    assert blind.returncode == 1 and "nothing was pruned" in blind.stderr
    assert (shop.parent / "shop.tempo" / "api").is_dir()
    outside = cli("worktrees", cwd=tmp_path / "plain")
    assert outside.returncode == 1 and "is not in a git repository" in outside.stderr
