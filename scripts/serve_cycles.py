"""Start and stop `tempo serve` many times in varied states; report how long each took to be gone.

Usage:
  serve_cycles.py [--cycles=<n>] [--parallel=<n>]

Options:
  --cycles=<n>    How many start/stop cycles [default: 100].
  --parallel=<n>  How many run at once [default: 4].

The states and the driver are tests/test_shutdown.py's (joined, conductor, mid-call, mid-cue,
SIGTERM, a waiter, not yet initialized, Temporal never up, Temporal killed first), on dev servers
of this script's own. Exit 1 if any process was still alive 5 s after its stdin closed, or if a
player was left running where Temporal was up (its serve should have ended it).
"""

import itertools
import statistics
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from docopt import docopt

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import tempo  # noqa: E402
from conftest import DevServer, free_port  # noqa: E402
from test_shutdown import GONE_WITHIN, UP_STATES, cycle, left_behind  # noqa: E402


def dev_server(directory: str) -> DevServer:
    port = free_port()
    db = str(Path(directory) / f"temporal-{port}.db")
    argv = tempo._dev_server_argv(tempo.temporal_binary(), "127.0.0.1", port, db, http_port=free_port(), metrics_port=free_port())
    server = DevServer(address=f"127.0.0.1:{port}", process=None, db=db, argv=argv)
    server.start()
    return server


def main() -> int:
    args = docopt(__doc__)
    cycles, parallel = int(args["--cycles"]), int(args["--parallel"])
    states = list(itertools.islice(itertools.cycle(UP_STATES + ["never-up", "never-up+sigterm", "server-killed"]), cycles))
    with tempfile.TemporaryDirectory() as home:
        up = dev_server(home)
        doomed: list[DevServer] = []
        lock = threading.Lock()

        def one(state: str) -> tuple[str, float, str]:
            if state != "server-killed":
                address = f"127.0.0.1:{free_port()}" if state.startswith("never-up") else up.address
                return cycle(state, address, home)
            with lock:  # a server of its own, killed under the session
                server = dev_server(home)
                doomed.append(server)
            return cycle(state, server.address, home, kill_server=lambda: (server.process.kill(), server.process.wait()))

        try:
            with ThreadPoolExecutor(parallel) as pool:
                results = list(pool.map(one, states))
            stayed = left_behind(up.address, results)
        finally:
            up.stop()
            for server in doomed:
                server.stop()
    times = [gone for _, gone, _ in results]
    for state in dict.fromkeys(states):
        mine = [gone for s, gone, _ in results if s == state]
        print(f"{state:<20} n={len(mine):<4} median {statistics.median(mine):5.2f} s  max {max(mine):5.2f} s")
    late = [(s, g) for s, g, _ in results if g > GONE_WITHIN]
    print(f"all {len(times)} cycles: median {statistics.median(times):.2f} s, max {max(times):.2f} s; "
          f"over {GONE_WITHIN:.0f} s: {len(late)}; players left running: {len(stayed)} {stayed or ''}")
    return 1 if late or stayed else 0


if __name__ == "__main__":
    sys.exit(main())
