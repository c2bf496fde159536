"""Run ManualQA and its services on one machine: ``python -m manualqa.stack run|test|services``.

``run``      start the embedded PostgreSQL (unless DATABASE_URL is set) and Redis (unless one
             answers at REDIS_URL), bootstrap the database, then serve the site with gunicorn on
             127.0.0.1:8000 and run a Celery worker on the ``default`` and ``gpu`` queues, with beat
             for the periodic job reaper.
             Ctrl-C stops everything this command started, and nothing else.
``test``     the same services, then pytest with any extra arguments; exits with pytest's code.
``services`` start the services if needed and print where they are (they keep running).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def say(message: str) -> None:
    print(f"[manualqa] {message}", flush=True)


class Stack:
    """The services and processes this invocation started, so it stops exactly those."""

    def __init__(self) -> None:
        self.var_dir = Path(os.environ.get("MANUALQA_VAR_DIR", BASE_DIR / "var")).resolve()
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.redis_process: subprocess.Popen | None = None
        self.started_postgres = False
        self.children: list[tuple[str, subprocess.Popen]] = []

    # --- services ---------------------------------------------------------------------------
    def ensure_services(self, *, redis_url: str) -> None:
        from manualqa import embedded

        if os.environ.get("DATABASE_URL"):
            say("Using the database at DATABASE_URL.")
        else:
            pgdata = self.var_dir / "pgdata"
            was_running = embedded._postmaster_socket_dir(pgdata) is not None
            socket_dir = embedded.ensure_postgres(pgdata)
            self.started_postgres = not was_running
            state = "Started" if self.started_postgres else "Using running"
            say(f"{state} embedded PostgreSQL+pgvector (data {pgdata}, socket {socket_dir}).")
        if embedded.redis_answers(redis_url):
            say(f"Using the Redis server that answers at {redis_url}.")
        else:
            parsed = urlparse(redis_url)
            if parsed.hostname not in {"127.0.0.1", "localhost", "::1"}:
                raise SystemExit(f"Redis at {redis_url} does not answer, and it is not local.")
            say(f"No Redis answers at {redis_url}; starting {embedded.redis_server_binary()}.")
            self.redis_process = embedded.start_redis(redis_url, self.var_dir / "redis")
            say(f"Started redis-server (pid {self.redis_process.pid}).")

    def stop_services(self) -> None:
        from manualqa import embedded

        if self.redis_process is not None and self.redis_process.poll() is None:
            self.redis_process.terminate()
            try:
                self.redis_process.wait(10)
            except subprocess.TimeoutExpired:
                self.redis_process.kill()
            say("Stopped the redis-server it started.")
        if self.started_postgres:
            embedded.stop_postgres(self.var_dir / "pgdata")
            say("Stopped the embedded PostgreSQL it started.")

    # --- processes --------------------------------------------------------------------------
    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        # A session of its own: Ctrl-C reaches only us, and we stop children in order.
        process = subprocess.Popen(args, cwd=BASE_DIR, env=env, start_new_session=True)
        self.children.append((name, process))
        say(f"Started {name} (pid {process.pid}).")

    def stop_children(self) -> None:
        for _name, process in reversed(self.children):
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 20
        for name, process in reversed(self.children):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            say(f"Stopped {name}.")
        self.children.clear()


def _redis_url(default_db: int = 0) -> str:
    return os.environ.get("REDIS_URL", f"redis://127.0.0.1:6379/{default_db}")


def run() -> int:
    stack = Stack()
    redis_url = _redis_url()
    interrupted = False

    def on_signal(signum, frame):
        nonlocal interrupted
        interrupted = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.ensure_services(redis_url=redis_url)
        env = {**os.environ, "REDIS_URL": redis_url}
        code = subprocess.call([PYTHON, "manage.py", "bootstrap", "--demo"], cwd=BASE_DIR, env=env)
        if code != 0:
            say("Bootstrap failed; see above.")
            return code
        host = os.environ.get("HOST", "127.0.0.1")
        port = os.environ.get("PORT", "8000")
        stack.spawn(
            "gunicorn",
            [
                PYTHON, "-m", "gunicorn", "manualqa.asgi:application", "--bind", f"{host}:{port}",
                # uvicorn workers: a streamed answer waits on the event loop, so owners who
                # stop reading cannot hold every worker thread (security review H2).
                "--worker-class", "uvicorn_worker.UvicornWorker", "--workers", "2",
                "--timeout", "120", "--access-logfile", "-",
            ],
            {**env, "DATABASE_POOL": os.environ.get("DATABASE_POOL", "1")},
        )  # fmt: skip
        stack.spawn(
            "celery worker",
            [
                PYTHON, "-m", "celery", "-A", "manualqa", "worker", "-Q", "default,gpu",
                "--concurrency", os.environ.get("CELERY_CONCURRENCY", "2"),
                "--hostname", "manualqa@%h", "--loglevel", "INFO",
                # The one worker also runs beat: the periodic job reaper.
                "--beat", "--schedule", str(stack.var_dir / "celerybeat-schedule"),
            ],
            env,
        )  # fmt: skip
        say(f"ManualQA is at http://{host}:{port}/  (admin: http://{host}:{port}/admin/)")
        password_file = stack.var_dir / "demo_admin_password"
        if password_file.exists():
            say(f"Demo superuser: admin (password in {password_file})")
        say("Press Ctrl-C to stop everything this command started.")
        while not interrupted:
            for name, process in stack.children:
                if process.poll() is not None:
                    say(f"{name} exited with code {process.returncode}; stopping.")
                    interrupted = True
            time.sleep(0.5)
        return 0
    finally:
        stack.stop_children()
        stack.stop_services()


def test(pytest_args: list[str]) -> int:
    stack = Stack()
    # Tests use their own Redis database so that a running dev worker never takes their tasks.
    redis_url = _redis_url(default_db=15)
    try:
        stack.ensure_services(redis_url=redis_url)
        # The tests' web servers listen on 127.0.0.1, which crawls may not reach by default.
        env = {**os.environ, "REDIS_URL": redis_url, "CRAWL_ALLOW_PRIVATE_NETWORKS": "1"}
        return subprocess.call([PYTHON, "-m", "pytest", *pytest_args], cwd=BASE_DIR, env=env)
    finally:
        stack.stop_services()


def services() -> int:
    stack = Stack()
    stack.ensure_services(redis_url=_redis_url())
    if stack.redis_process is not None:
        say("redis-server keeps running in the background; stop it with `redis-cli shutdown`.")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "services"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "run":
        return run()
    if command == "test":
        return test(rest)
    return services()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
