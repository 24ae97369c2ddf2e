"""``python -m app --model PATH [--host 127.0.0.1] [--port 8080] [--workers N]``: serve a package.

The model is verified here, in the parent, before any worker starts: a missing manifest, a wrong
sha256 or an absent schema ends the process with one clear log line and the error's exit code instead
of a crash loop of workers. The image runs the same command, so local runs match production.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import replace

from app.config import AppConfig, ConfigError, spool_dir_problem
from model_package import PackageError

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
        logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s %(message)s")
        log.critical("refusing to start: %s", exc)
        return ConfigError.exit_code
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parse_args(argv, config)
    if args.workers < 1 or not 0 < args.port < 65536:
        log.critical("refusing to start: --workers must be >= 1 and --port in 1..65535")
        return ConfigError.exit_code
    config = replace(config, model_dir=args.model, host=args.host, port=args.port, workers=args.workers)
    problem = spool_dir_problem(config.spool_dir)
    if problem is not None:
        log.critical("refusing to start: %s", problem)
        return ConfigError.exit_code

    from app.handlers import model_fn

    try:
        model = model_fn(config.model_dir, runtime=config.model_runtime, allow_pickle=config.allow_pickle)
    except PackageError as exc:
        log.critical("refusing to start: model package %s cannot be served: %s", config.model_dir, exc)
        return exc.exit_code
    log.info("model %s v%s verified (sha256 %s)", model.manifest.name, model.manifest.version, model.package.sha256)

    # Workers re-read the environment (uvicorn factory mode), so hand them the CLI choices through it.
    os.environ["MODEL_DIR"] = config.model_dir
    multiproc_dir = None
    if config.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiproc_dir = tempfile.mkdtemp(prefix="app-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir

    import uvicorn

    # One server stack for one worker and for many: the fast event loop and HTTP parser (h11 would add
    # ~40 ms of delayed ACKs per response) and time for the capture sinks to flush on SIGTERM.
    server_options = {
        "host": config.host,
        "port": config.port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "server_header": False,  # do not advertise the server software to clients (OWASP: fingerprinting)
        "proxy_headers": False,
        "log_level": config.log_level.lower(),
        "timeout_graceful_shutdown": 20,
    }
    try:
        if config.workers == 1:
            from app.factory import create_app

            uvicorn.run(create_app(config, model=model), **server_options)
        else:
            uvicorn.run("app.factory:create_app_from_env", factory=True, workers=config.workers, **server_options)
    finally:
        if multiproc_dir is not None:
            shutil.rmtree(multiproc_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
