"""The production server (``flask --app app serve``: granian workers running wsgi:app) as a
deployment runs it: a separate process on a real port."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from geo.server import GRACE_S

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(database_url: str, sender: bool = False, **popen) -> tuple[subprocess.Popen, int]:
    """``flask --app app serve`` on a free port, two workers of two threads, once it listens; the
    notification sender beside them only when the test is about every process (one process
    fewer starting at once is seconds less on a busy machine)."""
    port = _free_port()
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    process = subprocess.Popen([flask, "--app", "app", "serve", "--port", str(port), "--workers", "2", "--threads", "2"],
                               cwd=ROOT, env={**os.environ, "DATABASE_URL": database_url, "BASEMAP_URL": "none",
                                    "SECRET_KEY": "test-server-" + "k" * 32, "NOTIFY_WITH_SERVE": "1" if sender else "0"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the server did not start: {process.stdout.read()}")
            time.sleep(0.2)
    return process, port


def _serving(port: int) -> list[int]:
    """The processes whose command line serves ``port`` (the granian main and its workers)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                words = cmdline.read().split(b"\0")
        except OSError:
            continue
        if b"granian" in b" ".join(words) and str(port).encode() in words:
            found.append(int(entry))
    return found


def _worker_pids(port: int) -> set[int]:
    """The serving processes whose parent serves too: granian's workers."""
    serving = _serving(port)
    parents = {}
    for pid in serving:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":  # a zombie has exited: only its parent has not reaped it yet
            parents[pid] = int(fields[1])
    return {pid for pid, parent in parents.items() if parent in serving}


class StopWatch:
    """Watches a server stop by its outcomes, however busy the machine: the log lines with the
    time each was read, and when each worker process was last seen alive (from /proc).

    A worker that does not stop by itself is killed when the grace period ends, so it is seen
    alive until GRACE_S after the stop (19.95 s measured, by a poll every 50 ms); one that stops
    is gone in about a second, and three quarters of the grace period leaves room for a busy
    machine on both sides. granian's own "Killing worker-N after it refused to gracefully
    stop" is no judge: it also reports a worker that had exited long before (its join times out
    on a process its watcher thread had reaped).
    """

    def __init__(self, process: subprocess.Popen, port: int):
        self.process, self.port = process, port
        self.lines: list[tuple[float, str]] = []
        self.last_seen: dict[int, float] = {}
        self._done = threading.Event()
        self._threads = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=self._poll, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line))

    def _poll(self) -> None:
        while not self._done.is_set():
            for pid in _worker_pids(self.port):
                self.last_seen[pid] = time.monotonic()
            time.sleep(0.05)

    def seen(self, workers: int, timeout: float = 30.0) -> None:
        """Wait until ``workers`` workers have been seen alive: a stop signalled before the first
        look at /proc could end them unseen (a busy machine delays the watcher's first pass)."""
        deadline = time.monotonic() + timeout
        while len(self.last_seen) < workers:
            assert time.monotonic() < deadline, f"only {len(self.last_seen)} of {workers} workers seen"
            time.sleep(0.02)

    def finish(self) -> int:
        """Wait for the server to end (a generous bound: three grace periods); its exit status."""
        status = self.process.wait(timeout=3 * GRACE_S)
        self._done.set()
        for thread in self._threads:
            thread.join(timeout=GRACE_S)
        return status

    @property
    def output(self) -> str:
        return "".join(line for _, line in self.lines)

    def workers_outlived_the_stop_by(self) -> float:
        """Seconds from granian's "Shutting down" to the last sight of a live worker."""
        stop = next(at for at, line in self.lines if "Shutting down granian" in line)
        return max((seen - stop for seen in self.last_seen.values()), default=0.0)

    def assert_stopped_by_itself(self) -> None:
        """Exit status 0, every worker stopped by itself within the grace period, nothing left over."""
        status = self.finish()
        assert status == 0, self.output
        assert self.last_seen, "no worker was ever seen"
        lived = self.workers_outlived_the_stop_by()
        assert lived < GRACE_S * 3 / 4, f"a worker lived {lived:.1f} s after the stop: killed, not stopped:\n{self.output}"
        assert _serving(self.port) == [], self.output


@pytest.fixture(scope="module")
def server(database_url):
    """The server; the last test stops it as a deployment's SIGINT would."""
    process, port = _start(database_url)
    yield process, port
    if process.poll() is None:
        process.kill()
        process.wait()


def _get(connection: http.client.HTTPConnection, path: str, method: str = "GET", body: str | None = None):
    connection.request(method, path, body, {"Content-Type": "application/json"} if body else {})
    response = connection.getresponse()
    return response, response.read()


def test_it_serves_the_app_and_its_static_files_over_one_kept_alive_connection(server):
    _, port = server
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    response, body = _get(connection, "/healthz")
    # "ok": reachable and migrated ("migrations pending" otherwise).
    assert response.status == 200 and json.loads(body) == {"status": "ok"}
    first_socket = connection.sock
    response, body = _get(connection, "/api/outlets/nearest?lon=8.4&lat=49.0&n=5")
    assert response.status == 200 and "outlets" in json.loads(body)
    # Static files come from granian itself, with a short cache lifetime (our scripts change).
    response, body = _get(connection, "/static/js/outlets_map.js")
    assert response.status == 200 and b"function" in body
    assert response.getheader("cache-control") == "max-age=600"
    assert connection.sock is first_socket  # HTTP/1.1 keep-alive
    response, body = _get(connection, "/map/outlets")
    assert response.status == 200 and b"<html" in body.lower()


def test_bad_requests_are_problems_not_crashes(server):
    _, port = server
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for method, path, body, status in (("POST", "/api/bookings", "{not json", 400),
                                       ("GET", "/api/outlets/nearest?lon=east&lat=49", None, 400),
                                       ("GET", "/api/outlets/OUT-NOPE/slots", None, 404)):
        response, answer = _get(connection, path, method, body)
        assert response.status == status, answer
        assert response.getheader("content-type") == "application/problem+json"
        assert json.loads(answer)["status"] == status


def test_parallel_requests_are_all_answered(server):
    _, port = server

    def search(index: int) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        statuses = [_get(connection, f"/api/outlets/nearest?lon={8 + index / 100}&lat=49&n=3")[0].status
                    for _ in range(5)]
        connection.close()
        return max(statuses)

    with ThreadPoolExecutor(max_workers=24) as pool:
        assert set(pool.map(search, range(24))) == {200}


def test_ctrl_c_stops_it_gracefully(server):
    process, port = server
    watch = StopWatch(process, port)
    watch.seen(workers=2)
    process.send_signal(signal.SIGINT)
    watch.assert_stopped_by_itself()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_ctrl_c_in_a_terminal_stops_every_process(database_url):
    # A terminal's Ctrl-C signals the whole foreground process group: the server and, unless
    # granian ran in a session of its own, its workers too, which then sometimes hung for 20 s.
    process, port = _start(database_url, sender=True, start_new_session=True)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    assert _get(connection, "/api/outlets/nearest?lon=8.4&lat=49.0&n=2")[0].status == 200
    # granian's main process and two workers (the second may still be starting when the first answers)
    deadline = time.monotonic() + 30
    while not (len(_serving(port)) == 3 and len(_worker_pids(port)) == 2):
        assert time.monotonic() < deadline, (_serving(port), _worker_pids(port))
        time.sleep(0.05)
    watch = StopWatch(process, port)
    watch.seen(workers=2)
    os.killpg(process.pid, signal.SIGINT)
    watch.assert_stopped_by_itself()


def test_a_stop_while_the_workers_load_the_app_waits_for_them(database_url):
    # A worker still importing the app misses a SIGTERM and hangs until the grace period ends
    # (20 s): the server passes a stop on only once every worker has started.
    process, port = _start(database_url, start_new_session=True)
    watch = StopWatch(process, port)
    process.send_signal(signal.SIGTERM)  # the port is open; the workers may still be loading
    watch.assert_stopped_by_itself()
    assert watch.output.count("Started worker-") == 2, watch.output


def _threads(pid: int) -> dict[int, str]:
    """The threads of process ``pid`` and their names."""
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as comm:
                found[int(tid)] = comm.read().strip()
        except OSError:
            continue
    return found


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_stop_signal_given_to_any_thread_of_a_worker_stops_it(database_url):
    # The kernel may hand a process-wide SIGTERM to any thread of a worker, and Python runs its
    # handler only in the main thread, which slept on until the kill 20 s later: one stop in
    # seven or so. Sent to the Rust runtime's thread on purpose, it hung the worker every time
    # before geo.server.relay_stop_signals.
    process, port = _start(database_url, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            workers = sorted(_worker_pids(port))
            threads = _threads(workers[0]) if workers else {}
            runtime = [tid for tid, name in threads.items() if name.startswith("tokio")]
            if runtime:
                break
            assert time.monotonic() < deadline, threads
            time.sleep(0.05)
        os.kill(runtime[0], signal.SIGTERM)  # kill(2) with a thread's id prefers that thread
        deadline = time.monotonic() + GRACE_S / 2
        while not _gone(workers[0]):
            assert time.monotonic() < deadline, f"the worker did not stop: {_threads(workers[0])}"
            time.sleep(0.05)
    finally:
        for pid in _serving(port):
            os.kill(pid, signal.SIGKILL)
        process.kill()
        process.wait()


def test_a_deployment_refuses_to_start_without_a_real_secret_key(database_url):
    # Which keys are refused is secret_key_problem's doctest; here, that both ways of serving
    # refuse: `flask serve` without a key, and any other WSGI server importing wsgi:app with a short one.
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env.update(DATABASE_URL=database_url, BASEMAP_URL="none")
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    served = subprocess.run([flask, "--app", "app", "serve", "--port", str(_free_port())], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert served.returncode != 0 and "SECRET_KEY is not set" in served.stderr and "token_hex" in served.stderr
    imported = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env={**env, "SECRET_KEY": "short-key"},
                              capture_output=True, text=True, timeout=60)
    assert imported.returncode != 0 and "InsecureSecretKey" in imported.stderr and "9 characters" in imported.stderr


def _children(pid: int) -> dict[int, list[bytes]]:
    """The live children of ``pid`` and their command lines."""
    found = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                words = cmdline.read().split(b"\0")
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry)] = words
    return found


def test_reports_are_settled_by_the_settler_beside_the_workers_which_stops_with_them():
    # Its own database: no settler of the tests' own may settle these reports.
    from geo.db import make_engine
    from geo.migrate import upgrade
    from outages.settler import wait_settled
    from sqlalchemy import text
    from tests.accounts import add_role_accounts
    from tests.conftest import _test_database_url
    from tests.networks import protected_feeder
    from topology.loader import load_network

    url = _test_database_url("SERVE_DATABASE_URL", suffix="_serve")
    engine = make_engine(url, pool_size=2)
    upgrade(engine)
    with engine.begin() as connection:
        add_role_accounts(connection)
        load_network(connection, protected_feeder())
    process, port = _start(url, start_new_session=True)
    try:
        settlers = [pid for pid, words in _children(process.pid).items() if words[-3:-1] == [b"outages", b"settle"]]
        assert len(settlers) == 1, _children(process.pid)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for account in ("A-C1", "A-C2"):
            response, body = _get(connection, "/api/calls", "POST", json.dumps({"account": account}))
            assert response.status == 201, body
        assert wait_settled(engine, 60), "the settler process did not settle the calls"
        with engine.connect() as db:
            assert db.execute(text("SELECT device, calls FROM outages WHERE state = 'predicted'")).all() == [("T1", 2)]
        os.kill(settlers[0], signal.SIGKILL)  # it dies: the server starts another
        deadline = time.monotonic() + 30
        while not [pid for pid, words in _children(process.pid).items()
                   if words[-3:-1] == [b"outages", b"settle"] and pid != settlers[0]]:
            assert time.monotonic() < deadline, "the settler was not started again"
            time.sleep(0.2)
        response, body = _get(connection, "/api/calls", "POST", json.dumps({"account": "A-C3"}))
        assert response.status == 201, body
        assert wait_settled(engine, 60), "the new settler did not settle the call"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        engine.dispose()
    assert not _children(process.pid)  # nothing of it is left running


def test_a_workers_stop_handler_acts_once_however_often_it_is_called():
    # With the relay, one stop signal can run granian's handler twice (relay thread and main
    # thread); its second WorkerSignal.set() before the worker took the first blocks for good,
    # holding the GIL: stops hung until the kill 20 s later. Run apart, so that a hang is a timeout.
    script = (
        "import signal\n"
        "from granian import _signals\n"
        "from geo.server import _stop_once\n"
        "_stop_once()\n"
        "_signals.set_sync_signals()\n"
        "for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM):\n"
        "    signal.getsignal(sig)(sig, None)\n"
        "print('acted once')\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "acted once", done.stderr
