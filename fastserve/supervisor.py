"""Worker processes serving one set of sockets: started, watched, replaced and stopped.

The supervisor binds the listening sockets, starts ``--workers`` processes
(multiprocessing's spawn method, so each imports the application afresh) and
then only waits: on its workers' pipes, on their exits, and on signals.

- The supervisor says where it listens, once. The first worker starts alone;
  the others start once it is ready, so an app that cannot start fails once,
  with one traceback. A worker says "ready" once it listens and its lifespan
  startup is done. One that exits before that on the first start ends
  everything with its exit code (3 for a startup failure); one that dies after
  it is replaced, with a backoff that grows while workers keep dying.
- SIGTERM and SIGINT stop every worker gracefully; a second SIGINT forces them.
- SIGHUP replaces the workers one by one, each new worker ready before an old
  one is stopped, so no request fails. It also picks up new application code.
- SIGTTIN adds a worker, SIGTTOU removes one.
- A worker that does not answer a ping within --timeout-worker-healthcheck is
  killed; one past --workers-max-rss or --workers-lifetime is replaced.
- With --reload there is one worker, restarted when watched files change.

It never imports the application.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import signal
import socket
import threading
import time
from collections import deque
from multiprocessing.connection import Connection, wait
from typing import Any

from fastserve.child import STARTUP_FAILURE, serve_worker
from fastserve.config import Config, StartupError
from fastserve.sockets import BindError, log_listening, open_sockets, warn_if_requests_are_lost_with_reuse_port

logger = logging.getLogger("fastserve.error")

SUPERVISOR_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU)
TICK = 0.5
PING_INTERVAL = 1.0
# Extra time, past the graceful shutdown timeout, before stopping workers are killed.
KILL_GRACE = 5.0
# Worker deaths counted for the backoff are those of the last minute.
CRASH_WINDOW = 60.0
MAX_BACKOFF = 30.0
# The longest a new worker may take to become ready before it counts as failed.
READY_TIMEOUT = 60.0
_spawn = multiprocessing.get_context("spawn")


class Worker:
    """One worker process and the supervisor's end of its pipe."""

    def __init__(self, config: Config, sockets: list[socket.socket], replaces: Worker | None = None) -> None:
        self.connection, child_end = _spawn.Pipe()
        self.process = _spawn.Process(target=serve_worker, args=(config, sockets, child_end), name="fastserve-worker")
        self.process.start()
        child_end.close()
        self.pid = self.process.pid
        self.started_at = time.monotonic()
        self.replaces = replaces
        self.ready = False
        self.retiring = False
        self.stopping_since: float | None = None
        self.ping_sent_at: float | None = None
        self.last_pong = self.started_at
        self.rss = 0
        # Spread lifetime recycling so that workers started together do not all restart together.
        self.lifetime_jitter = random.uniform(0, 0.1)

    @property
    def stopping(self) -> bool:
        return self.stopping_since is not None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()
        self.signal(sig)

    def signal(self, sig: int) -> None:
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def ping(self, now: float) -> None:
        try:
            self.connection.send("ping")
        except OSError:
            return
        self.ping_sent_at = now

    def exit_cause(self) -> str:
        code = self.process.exitcode
        if code is None:
            return "is still running"
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with code {code}"


class Supervisor:
    """Runs ``config`` in worker processes until told to stop; ``run()`` returns the exit code."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.target = 1 if config.reload else config.workers
        self.workers: list[Worker] = []
        self.sockets: list[socket.socket] = []
        self.signals: deque[int] = deque()
        self.stopping = False
        self.exit_code = 0
        # Workers waiting for a replacement (rolling restart, recycling), oldest first.
        self.to_replace: deque[Worker] = deque()
        self.crashes: deque[float] = deque()
        self.respawn_at: float | None = None
        self.changes_reader: Connection | None = None
        self.first_start_pending = False
        self._watcher_stop = threading.Event()

    # Setting up -----------------------------------------------------------

    def bind(self) -> None:
        config = self.config
        # With --reuse-port the TCP addresses are only held (and port 0 resolved): each worker listens on a twin.
        self.sockets = open_sockets(
            config.addresses, config.backlog, config.uds_permissions, config.reuse_port, listening=not config.reuse_port
        )
        if config.reuse_port:
            warn_if_requests_are_lost_with_reuse_port()

    def run(self) -> int:
        try:
            self.bind()
        except BindError as exc:
            raise StartupError(str(exc)) from None  # exit 3, as uvicorn's for an address in use
        log_listening(self.sockets, "https" if self.config.ssl_certfile else "http")
        wakeup_reader, wakeup_writer = socket.socketpair()
        wakeup_reader.setblocking(False)
        wakeup_writer.setblocking(False)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in SUPERVISOR_SIGNALS}
        previous_fd = signal.set_wakeup_fd(wakeup_writer.fileno(), warn_on_full_buffer=False)
        logger.info("Started parent process [%d]", os.getpid())
        try:
            if self.config.reload:
                self._start_watching()
            # The first worker starts alone, the others once it is ready: an app
            # that cannot start fails once, with one traceback, not once per worker.
            self.first_start_pending = self.target > 1
            self.spawn()
            self._loop(wakeup_reader)
        finally:
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._watcher_stop.set()
            for worker in self.workers:
                worker.process.kill()
                worker.process.join()
            for sock in self.sockets:
                sock.close()
            wakeup_reader.close()
            wakeup_writer.close()
        logger.info("Stopping parent process [%d]", os.getpid())
        return self.exit_code

    def _on_signal(self, sig: int, frame: Any) -> None:
        self.signals.append(sig)

    # The loop -------------------------------------------------------------

    def _loop(self, wakeup: socket.socket) -> None:
        while self.workers or not self.stopping:
            waitables: list[Any] = [wakeup]
            for worker in self.workers:
                waitables += (worker.connection, worker.process.sentinel)
            if self.changes_reader is not None:
                waitables.append(self.changes_reader)
            for ready in wait(waitables, timeout=TICK):
                if ready is wakeup:
                    _drain(wakeup)
                elif ready is self.changes_reader:
                    self._on_files_changed()
            while self.signals:
                self._handle_signal(self.signals.popleft())
            for worker in list(self.workers):
                self._read_messages(worker)
                if not worker.process.is_alive():
                    self._on_exit(worker)
            self._housekeeping(time.monotonic())

    def _read_messages(self, worker: Worker) -> None:
        try:
            while worker.connection.poll():
                event, rss = worker.connection.recv()
                worker.rss = rss
                if event == "ready":
                    self._on_ready(worker)
                elif event == "pong":
                    worker.ping_sent_at = None
                    worker.last_pong = time.monotonic()
                elif event == "retiring":
                    worker.retiring = True
                    if not self.stopping:  # (a replacement started now would never be stopped)
                        logger.info("Worker [%d] reached its request limit; starting its replacement", worker.pid)
                        self.spawn()
        except (EOFError, OSError):
            pass

    def _on_ready(self, worker: Worker) -> None:
        worker.ready = True
        worker.last_pong = time.monotonic()
        logger.info("Worker [%d] is ready", worker.pid)
        if self.first_start_pending:
            self.first_start_pending = False
            while len(self._serving()) < self.target and not self.stopping:
                self.spawn()
        old = worker.replaces
        if old is not None and not old.stopping:
            old.stop()
        self._replace_next()

    def _on_exit(self, worker: Worker) -> None:
        worker.process.join()
        worker.connection.close()
        self.workers.remove(worker)
        if worker in self.to_replace:
            self.to_replace.remove(worker)
        if worker.stopping or self.stopping:
            logger.info("Worker [%d] stopped", worker.pid)
            return
        if worker.retiring and worker.process.exitcode == 0:
            logger.info("Worker [%d] recycled", worker.pid)
            return
        if not worker.ready:
            self._on_failed_start(worker)
            return
        logger.error("Worker [%d] %s; replacing it", worker.pid, worker.exit_cause())
        self._schedule_respawn()

    def _on_failed_start(self, worker: Worker) -> None:
        code = worker.process.exitcode
        if self.config.reload:
            logger.error("Worker [%d] %s; waiting for a file change", worker.pid, worker.exit_cause())
        elif worker.replaces is not None:
            # New code that does not start: keep the workers that run, and stop replacing.
            logger.error(
                "New worker [%d] %s before it was ready; keeping the running workers", worker.pid, worker.exit_cause()
            )
            self.to_replace.clear()
        elif code in (1, 2, STARTUP_FAILURE):
            # A configuration or startup failure: another try would fail the same way (gunicorn halts too).
            logger.error("Worker [%d] failed to start (%s); stopping", worker.pid, worker.exit_cause())
            self.exit_code = code
            self.stop()
        else:
            logger.error("Worker [%d] %s before it was ready; replacing it", worker.pid, worker.exit_cause())
            self._schedule_respawn()

    def _schedule_respawn(self) -> None:
        now = time.monotonic()
        self.crashes.append(now)
        while self.crashes and self.crashes[0] < now - CRASH_WINDOW:
            self.crashes.popleft()
        # The first death is replaced at once; repeated ones wait longer and longer.
        delay = 0.0 if len(self.crashes) <= 1 else min(0.1 * 2 ** len(self.crashes), MAX_BACKOFF)
        if delay:
            logger.warning("Workers keep dying: next one in %.1f s", delay)
        if self.respawn_at is None:
            self.respawn_at = now + delay

    def _housekeeping(self, now: float) -> None:
        config = self.config
        if self.respawn_at is not None and now >= self.respawn_at and not self.stopping:
            self.respawn_at = None
            while len(self._serving()) < self.target:
                self.spawn()
        for worker in self.workers:
            if worker.stopping:
                limit = (config.timeout_graceful_shutdown or 0) + KILL_GRACE
                if now - worker.stopping_since > limit:  # type: ignore[operator]
                    logger.warning("Worker [%d] did not stop in time; killing it", worker.pid)
                    worker.signal(signal.SIGKILL)
                continue
            if not worker.ready:
                if now - worker.started_at > READY_TIMEOUT:
                    logger.error("Worker [%d] was not ready after %d s; killing it", worker.pid, READY_TIMEOUT)
                    worker.signal(signal.SIGKILL)
                continue
            if worker.ping_sent_at is not None:
                if now - worker.ping_sent_at > config.timeout_worker_healthcheck:
                    logger.error(
                        "Worker [%d] did not answer within %g s; killing it",
                        worker.pid,
                        config.timeout_worker_healthcheck,
                    )
                    worker.signal(signal.SIGKILL)
            elif now - worker.last_pong >= PING_INTERVAL:
                worker.ping(now)
            if worker.retiring or worker in self.to_replace:
                continue
            if config.workers_max_rss and worker.rss > config.workers_max_rss * 1024 * 1024:
                logger.warning(
                    "Worker [%d] uses %d MiB, above --workers-max-rss; replacing it",
                    worker.pid,
                    worker.rss // (1024 * 1024),
                )
                self.replace([worker])
            elif config.workers_lifetime and now - worker.started_at > config.workers_lifetime * (
                1 + worker.lifetime_jitter
            ):
                logger.info("Worker [%d] reached --workers-lifetime; replacing it", worker.pid)
                self.replace([worker])

    # Actions --------------------------------------------------------------

    def _serving(self) -> list[Worker]:
        """Workers that are, or are about to be, serving for good."""
        return [worker for worker in self.workers if not worker.stopping and not worker.retiring]

    def spawn(self, replaces: Worker | None = None) -> Worker:
        worker = Worker(self.config, self.sockets, replaces)
        self.workers.append(worker)
        logger.debug("Started worker [%d]", worker.pid)  # (it says "Started server process [pid]" itself)
        return worker

    def replace(self, workers: list[Worker]) -> None:
        """Replace ``workers`` one at a time: each new worker ready before its old one stops."""
        for worker in workers:
            if worker not in self.to_replace:
                self.to_replace.append(worker)
        self._replace_next()

    def _replace_next(self) -> None:
        if self.stopping or any(worker.replaces is not None and not worker.ready for worker in self.workers):
            return  # one replacement at a time
        while self.to_replace:
            old = self.to_replace.popleft()
            if old in self.workers and not old.stopping:
                self.spawn(replaces=old)
                return

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.stopping = True
        self.to_replace.clear()
        for worker in self.workers:
            worker.stop(sig)

    def _handle_signal(self, sig: int) -> None:
        if sig in (signal.SIGINT, signal.SIGTERM):
            if self.stopping and sig == signal.SIGINT:
                logger.info("Forcing the workers to stop")
                for worker in self.workers:
                    worker.signal(signal.SIGINT)
                return
            logger.info("Received %s; stopping the workers", signal.Signals(sig).name)
            self.stop()
        elif self.stopping:
            return
        elif sig == signal.SIGHUP:
            logger.info("Received SIGHUP; replacing the workers one by one")
            self.replace([worker for worker in self.workers if worker.ready and not worker.stopping])
        elif sig == signal.SIGTTIN:
            if self.config.reload:
                return
            self.target += 1
            logger.info("Received SIGTTIN; now %d worker(s)", self.target)
            self.spawn()
        elif sig == signal.SIGTTOU:
            if self.target <= 1:
                logger.info("Received SIGTTOU; keeping the last worker")
                return
            self.target -= 1
            logger.info("Received SIGTTOU; now %d worker(s)", self.target)
            serving = self._serving()
            if serving:
                serving[-1].stop()

    # --reload ---------------------------------------------------------------

    def _start_watching(self) -> None:
        from fastserve.reload import watch_changes

        reader, writer = _spawn.Pipe(duplex=False)
        self.changes_reader = reader
        threading.Thread(
            target=watch_changes, args=(self.config, writer, self._watcher_stop), daemon=True, name="reload"
        ).start()

    def _on_files_changed(self) -> None:
        assert self.changes_reader is not None
        try:
            changed = self.changes_reader.recv()
        except (EOFError, OSError):
            self.changes_reader = None
            return
        if self.stopping:
            return
        logger.warning("Changes detected in %s; reloading", ", ".join(changed))
        # Unlike SIGHUP, the old worker stops before the new one is ready: after an
        # edit, old code must not go on answering while the new code imports.
        for worker in self.workers:
            worker.stop()
        self.spawn()


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except BlockingIOError:
        pass
