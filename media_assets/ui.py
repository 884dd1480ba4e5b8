"""`media-pipeline ui`: the Dagster UI as three processes, a long-lived code server (`dagster code-server start`)
and the webserver and the daemon connected to it through a workspace file in DAGSTER_HOME.

Started with `-m media_assets.definitions`, the daemon manages a code server of its own and replaces it every
minute (Dagster re-reads a managed code location each 60 s); the replaced server then waits 20 s for a heartbeat
and logs "No heartbeat received in 20 seconds, shutting down", once a minute for as long as the daemon runs. A
code server nobody manages is never replaced; the webserver and the daemon only connect to it, and the runs
they launch start in it. The deployments do the same (docker-compose.yml with the repository's workspace.yaml,
deploy/systemd with its own)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from media_assets.storage import write_text_atomically

#: The code location's name: the one Dagster gave `-m media_assets.definitions`, which earlier runs are recorded
#: under (re-executing one needs its location by that name).
LOCATION = "media_assets.definitions"
MODULE = "media_assets.definitions"
CODE_SERVER_STARTUP_SECONDS = 300


def workspace_yaml(code_server_port: int) -> str:
    """The webserver's and the daemon's workspace: the code server on this machine, nothing they start."""
    return (f"# Written by `media-pipeline ui`: the code location is served by its long-lived code server.\n"
            f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {code_server_port}\n"
            f"      location_name: {LOCATION}\n")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_code_server(server: subprocess.Popen[bytes], port: int) -> None:
    """Until the code server accepts connections: it listens only once it has loaded the definitions."""
    deadline = time.monotonic() + CODE_SERVER_STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the code server exited with status {server.returncode} before it was ready")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the code server did not listen on port {port} within {CODE_SERVER_STARTUP_SECONDS} s")


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each child's process group (the code server's holds its gRPC worker and the runs it launched)."""
    for child in reversed(children):
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
    for child in reversed(children):
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


@contextmanager
def running_ui(host: str, port: int, dagster_home: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The code server, then the webserver and the daemon on it; all stopped when the block ends. The children
    inherit this process's environment (settings, the catalog's URL, DAGSTER_HOME) and its output."""
    bin_dir = Path(sys.executable).parent
    code_port = free_port()
    workspace = dagster_home / "workspace.yaml"
    write_text_atomically(workspace, workspace_yaml(code_port))
    children: list[subprocess.Popen[bytes]] = []
    try:
        children.append(subprocess.Popen(
            [str(bin_dir / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(code_port),
             "-m", MODULE, "--location-name", LOCATION], start_new_session=True))
        wait_for_code_server(children[0], code_port)
        children.append(subprocess.Popen([str(bin_dir / "dagster-webserver"), "-h", host, "-p", str(port),
                                          "-w", str(workspace)], start_new_session=True))
        # `media-pipeline-daemon` as a module: an older install without that script still starts.
        children.append(subprocess.Popen([sys.executable, "-m", "media_assets.defs.daemon", "run",
                                          "-w", str(workspace)], start_new_session=True))
        yield children
    finally:
        _stop(children)


def serve(host: str, port: int, dagster_home: Path) -> int:
    """Run the UI until Ctrl-C or SIGTERM (the CLI turns both into KeyboardInterrupt), or until one of its
    processes exits (then with status 1)."""
    stopped = False
    with running_ui(host, port, dagster_home) as children:
        print(f"Dagster UI on http://{host}:{port} (Ctrl-C stops it)", flush=True)
        try:
            while all(child.poll() is None for child in children):
                time.sleep(1)
        except KeyboardInterrupt:
            stopped = True
    return 0 if stopped else 1
