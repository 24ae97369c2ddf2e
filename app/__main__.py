"""``python -m app --model PATH [--host 127.0.0.1] [--port 8080] [--workers N]``: serve a package.

The model is verified here, in the parent, before any worker starts: a missing manifest, a wrong
sha256 or an absent schema ends the process with one clear log line and the error's exit code instead
of a crash loop of workers. The image runs the same command, so local runs match production.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.config import LOG_FORMAT, AppConfig, ConfigError, spool_dir_problem
from contracts.environment import AppEnvironment
from contracts.exit_codes import ExitCode
from model_package import PackageError

if TYPE_CHECKING:
    from app.core import LoadedModel

log = logging.getLogger("app")


def parse_args(argv: list[str] | None, config: AppConfig) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app", description="Serve a model package over HTTP.")
    parser.add_argument("--model", default=config.model_dir, help="unpacked package dir or model.zip (MODEL_DIR)")
    parser.add_argument("--host", default=config.host, help="listen address (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=config.port, help="listen port (PORT, default 8080)")
    parser.add_argument("--workers", type=int, default=config.workers, help="worker processes (WORKERS, default 2)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    try:
        config = AppConfig.from_env()
    except ConfigError as exc:
        logging.basicConfig(level="INFO", format=LOG_FORMAT)
        log.critical("refusing to start: %s", exc)
        return exc.exit_code
    logging.basicConfig(level=config.log_level, format=LOG_FORMAT)
    args = parse_args(argv, config)
    if args.workers < 1 or not 0 < args.port < 65536:
        log.critical("refusing to start: --workers must be >= 1 and --port in 1..65535")
        return ExitCode.USAGE
    config = replace(config, model_dir=args.model, host=args.host, port=args.port, workers=args.workers)
    problem = spool_dir_problem(config.spool_dir)
    if problem is not None:
        log.critical("refusing to start: %s", problem)
        return ConfigError.exit_code

    from app.core import load_model

    try:
        model = load_model(config.model_dir, runtime=config.model_runtime, allow_pickle=config.allow_pickle)
    except PackageError as exc:
        log.critical("refusing to start: model package %s cannot be served: %s", config.model_dir, exc)
        return exc.exit_code
    log.info("model %s v%s verified (sha256 %s)", model.manifest.name, model.manifest.version, model.package.sha256)

    busy = port_problem(config.host, config.port)
    if busy is not None:
        log.critical("refusing to start: cannot listen on %s:%s: %s", config.host, config.port, busy)
        return ExitCode.PORT_IN_USE
    return serve(config, model)


def serve(config: AppConfig, model: LoadedModel) -> int:
    """Run uvicorn and turn how it ended (and what the workers reported) into one documented exit code."""
    # Workers re-read the environment (uvicorn factory mode), so hand them the CLI choices through it.
    # Process plumbing: MODEL_DIR through the app's contract; the other three are the workers' own (see factory).
    os.environ.update(AppEnvironment(model_dir=config.model_dir).to_env())
    multiproc_dir = None
    if config.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # prometheus_client's variable
        multiproc_dir = tempfile.mkdtemp(prefix="app-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir
    from app.factory import PARENT_PID_ENV, STATUS_DIR_ENV

    os.environ[PARENT_PID_ENV] = str(os.getpid())

    status_dir = tempfile.mkdtemp(prefix="app-status-")
    os.environ[STATUS_DIR_ENV] = status_dir

    import uvicorn

    _Server = _server_class()  # noqa: N806 - a class
    server_options = uvicorn_options(config)
    server_code = ExitCode.OK
    try:
        if config.workers == 1:
            from app.factory import create_app

            server = _Server(uvicorn.Config(create_app(config, model=model), **server_options))
            server.run()
            if not server.started:
                server_code = ExitCode.SERVER_FAILED
        else:
            uvicorn.run("app.factory:create_app_from_env", factory=True, workers=config.workers, **server_options)
    except SystemExit as exc:  # uvicorn's own 3 ("startup failure") must not read as "manifest invalid"
        server_code = ExitCode.OK if exc.code in (None, 0) else ExitCode.SERVER_FAILED
    finally:
        if multiproc_dir is not None:
            shutil.rmtree(multiproc_dir, ignore_errors=True)
        reported = worker_reports(Path(status_dir))
        shutil.rmtree(status_dir, ignore_errors=True)
    for code, detail in reported:
        log.error("exit %d (%s): %s", code, ExitCode(code).name, detail)
    if reported:
        return max(code for code, _ in reported)
    if server_code != ExitCode.OK:
        log.error("exit %d (%s): the server did not start or stop cleanly", server_code, server_code.name)
    return server_code


def uvicorn_options(config: AppConfig) -> dict[str, Any]:
    """uvicorn's settings for this app, the same for one worker and for many.

    The fast event loop and HTTP parser (h11 would add ~40 ms of delayed ACKs per response), time for the
    capture sinks to flush on SIGTERM, and nothing that wraps the app: uvicorn wraps it in middleware for
    ``proxy_headers`` or trace logging, and the protocol then no longer finds the service it serves
    ``POST /predict`` from directly (``app.http_protocol``), so every request would take the slower ASGI path.
    """
    from app.http_protocol import LimitedHttpToolsProtocol

    return {
        "host": config.host,
        "port": config.port,
        "loop": "uvloop",
        # httptools with the header-size and header/body deadlines uvicorn lacks (app/http_protocol.py).
        "http": LimitedHttpToolsProtocol,
        "timeout_keep_alive": config.http_keepalive_seconds,  # idle kept-alive connections are closed
        # Beyond this many open connections (per worker) new requests get a 503 instead of exhausting file
        # descriptors (https://www.uvicorn.org/settings/#resource-limits).
        "limit_concurrency": config.http_max_connections,
        "access_log": False,
        "server_header": False,  # do not advertise the server software to clients (OWASP: fingerprinting)
        "proxy_headers": False,
        "log_level": config.log_level.lower(),
        "timeout_graceful_shutdown": 20,
    }


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server without the SIGTERM re-raise after a graceful shutdown.

        uvicorn restores the previous handler and raises the captured signal again, which ends the process
        (status -15) before ``main`` can return the exit code that says whether capture was saved.
        """

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return Server


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (in use, not permitted), or None. Checked before any worker
    starts so a busy port gets its own exit code instead of uvicorn's generic startup failure."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # uvicorn binds the same way
        try:
            probe.bind((host, port))
        except OSError as exc:
            return "address already in use" if exc.errno == errno.EADDRINUSE else str(exc)
    return None


def worker_reports(directory: Path) -> list[tuple[ExitCode, str]]:
    """(exit code, detail) written by workers that could not stop cleanly (``app.factory.report_shutdown``)."""
    reports: list[tuple[ExitCode, str]] = []
    for path in sorted(directory.glob("*-*")):
        try:
            code = int(path.name.rsplit("-", 1)[1])
            reports.append((ExitCode(code), path.read_text()))
        except (ValueError, OSError):
            reports.append((ExitCode.SERVER_FAILED, f"unreadable worker report {path.name}"))
    return reports


if __name__ == "__main__":
    sys.exit(main())
