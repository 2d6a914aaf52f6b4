"""Take docs/dashboard.png: a conductor and three players, real sessions, in real headless Chromium.

Usage:
  dashboard_screenshot.py [--out=<png>] [--width=<px>] [--height=<px>]

Options:
  --out=<png>     Where to write it [default: docs/dashboard.png].
  --width=<px>    Window width [default: 1280].
  --height=<px>   Window height [default: 860].
"""

import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import tempo  # noqa: E402
from conftest import DevServer, chromium, dashboard, free_port, play  # noqa: E402

TEAM = {  # name -> (directory, branch, part)
    "api": ("shop/services/api", "tempo/api", "Payment API: idempotent POST /charges"),
    "web": ("shop/web", "tempo/web", "Checkout page: card form and its error states"),
    "docs": ("shop/docs", "tempo/docs", "API reference for the new charge flow"),
}


async def scene(server: DevServer, work: Path, args) -> None:
    for directory, branch, _ in TEAM.values():
        (work / directory).mkdir(parents=True)
        subprocess.run(["git", "init", "-q", "-b", branch, str(work / directory)], check=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(work / "shop")], check=True)
    host = {"CLAUDE_TEMPO_HOST": "dev-laptop"}
    async with contextlib.AsyncExitStack() as stack:
        conductor = await stack.enter_async_context(play(server, "shop", cwd=str(work / "shop"), CLAUDE_TEMPO_CONDUCTOR="true", **host))
        await conductor.call("set_part", part="Leads the checkout release: splits the work, reviews results")
        players = {}
        for name, (directory, _, part) in TEAM.items():
            players[name] = await stack.enter_async_context(
                play(server, "shop", cwd=str(work / directory), CLAUDE_TEMPO_PLAYER_NAME=name, **host))
            await players[name].call("set_part", part=part)
        board = await stack.enter_async_context(dashboard(server, "shop", work, CLAUDE_TEMPO_UI="http://localhost:8233"))
        await conductor.call("cue", to="api", message="Add an Idempotency-Key to POST /charges; report when the tests pass.")
        await players["api"].call("report", type="result", message="POST /charges honours Idempotency-Key; 42 tests pass.")
        await conductor.call("cue", to="web", message="Wire the card form to the new endpoint.")
        await players["web"].call("report", type="blocker", message="Card form tests fail in CI: the payment sandbox key is not set there.")
        await players["docs"].call("report", type="question", message="Should the reference document the Retry-After header?")
        browser = await stack.enter_async_context(chromium(work / "profile"))
        tab = await browser.open(board.url, int(args["--width"]), int(args["--height"]))
        await tab.wait_for("document.querySelectorAll('.card').length === 4 && document.querySelectorAll('#feed li').length >= 8")
        await asyncio.sleep(1.5)  # last contact of every card
        out = ROOT / args["--out"]
        out.parent.mkdir(parents=True, exist_ok=True)
        await tab.screenshot(out, int(args["--width"]), int(args["--height"]))
        print(f"wrote {out}")


def main() -> int:
    from docopt import docopt

    args = docopt(__doc__)
    work = Path(tempfile.gettempdir()) / "tempo-demo"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    port = free_port()
    argv = tempo._dev_server_argv(tempo.temporal_binary(), "127.0.0.1", port, None, http_port=free_port(), metrics_port=free_port())
    server = DevServer(address=f"127.0.0.1:{port}", process=None, db="", argv=argv)
    server.start()
    try:
        asyncio.run(scene(server, work, args))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
