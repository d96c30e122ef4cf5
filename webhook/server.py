"""Serve the webhook with gunicorn over TLS.

gunicorn runs a master process that forks the workers and replaces any that
die. Each worker builds its own Flask application, Kubernetes client and TLS
context after the fork, and serves with a pool of threads (``gthread``), which
keeps the API server's connections alive between requests; a slow
NetworkAttachmentDefinition lookup blocks one thread, not a process.

gunicorn asks the ``ssl_context`` hook for a context on every new connection;
the hook answers from a ReloadingServerContext, so a renewed certificate is
used without a restart. gunicorn's own log lines go to the root logger, in
the format of every other numaflow-rdma command.

With more than one worker, Prometheus metrics are kept in files under
``PROMETHEUS_MULTIPROC_DIR`` so that ``/metrics`` on any worker reports the sum
over all of them.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from numaflow_rdma.webhook.tls import ReloadingServerContext

logger = logging.getLogger(__name__)

_serving_context: ReloadingServerContext | None = None
_serving_context_pid = 0


def _ssl_context(
    config: Any, default_ssl_context_factory: Callable[[], ssl.SSLContext]
) -> ssl.SSLContext:
    """Return this process's reloading context; gunicorn calls it for each new connection."""
    global _serving_context, _serving_context_pid
    if _serving_context is None or _serving_context_pid != os.getpid():
        _serving_context = ReloadingServerContext(Path(config.certfile), Path(config.keyfile))
        _serving_context_pid = os.getpid()
    return _serving_context.context()


def serving_certificate_is_valid() -> bool:
    """Tell whether this process has loaded a serving certificate that has not expired."""
    context = _serving_context
    return context is not None and _serving_context_pid == os.getpid() and context.is_valid()


def _child_exit(server: Any, worker: Any) -> None:
    """Drop the metric files of a worker that exited, as prometheus_client requires."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def _when_ready(server: Any) -> None:
    logger.info(
        "Webhook is serving on %s with %d worker processes.",
        ", ".join(str(listener) for listener in server.LISTENERS),
        server.num_workers,
    )


class RootLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger, with its records sent to the root logger's handlers instead of its own."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.propagate = True


class WebhookServer(BaseApplication):  # type: ignore[misc]
    """A gunicorn application whose workers serve the Flask app that ``app_factory`` builds."""

    def __init__(self, app_factory: Callable[[], Any], options: Mapping[str, Any]) -> None:
        self._app_factory = app_factory
        self._options = dict(options)
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if key not in self.cfg.settings:
                # A setting of newer gunicorn releases, such as control_socket_disable.
                logger.debug("This gunicorn has no setting %r; skipping it.", key)
                continue
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self._app_factory()


def gunicorn_options(
    *,
    bind_address: str,
    port: int,
    certificate_path: Path,
    key_path: Path,
    workers: int,
    threads: int,
    log_level: str,
    access_log: bool,
) -> dict[str, Any]:
    """Return the gunicorn settings of the webhook server."""
    host = f"[{bind_address}]" if ":" in bind_address else bind_address
    return {
        "bind": [f"{host}:{port}"],
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "certfile": str(certificate_path),
        "keyfile": str(key_path),
        "ssl_context": _ssl_context,
        # A worker that does not report back within this many seconds is replaced.
        "timeout": 30,
        "graceful_timeout": 10,
        # The API server reuses connections to webhooks; idle ones are kept this many seconds.
        "keepalive": 15,
        "logger_class": RootLogger,
        "loglevel": log_level,
        "accesslog": "-" if access_log else None,
        "proc_name": "numaflow-rdma-webhook",
        # The workers' heartbeat files; /dev/shm stays writable in read-only containers.
        "worker_tmp_dir": "/dev/shm" if os.path.isdir("/dev/shm") else None,
        # No control socket: it would be shared by every server of the same user.
        "control_socket_disable": True,
        "child_exit": _child_exit,
        "when_ready": _when_ready,
    }
