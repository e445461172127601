"""`polystream worker --config FILE`: background producers in their own process.

Reads the same config file as `polystream serve` (models, Redis store, background settings) and
runs `polystream.background.worker.run_worker` until SIGTERM/SIGINT. The proxies sharing that
Redis must have `polystream.background.workers: true` to hand their jobs over.

It also serves the reads proxies route to it (server/peer_reads.py) on `--peer-host`/`--peer-port`
(default 127.0.0.1 on any free port), advertised as `--peer-url` or the bound address. Proxies
that cannot reach it read Redis instead; `polystream.background.peer_url: ""` turns it off.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from .app import _construct, quiet_http_logs
from .auth import install_redaction, register_secrets
from .config import ConfigError, load_config


def run(config_path: str, concurrency: int | None = None, log_level: str = "info", peer_host: str = "127.0.0.1",
        peer_port: int = 0, peer_url: str | None = None) -> int:
    config = load_config(config_path)
    if config.store.type != "redis":
        raise ConfigError(f"{config_path}: a worker needs the Redis store (litellm_settings.cache_params "
                          "type redis, or polystream.store.redis_url)")
    from ..background.service import BackgroundSettings
    from ..background.worker import run_worker

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_http_logs(log_level)
    register_secrets(config.secrets())
    install_redaction()
    settings = _construct(BackgroundSettings, **config.background)
    options: dict[str, Any] = {"prefix": config.store.prefix}
    if concurrency is not None:
        options["concurrency"] = concurrency
    if settings.peer_url != "":  # the config's "" turns routing off for every process sharing it
        from .peer_reads import serve_reads

        options["reads"] = functools.partial(serve_reads, config=config, host=peer_host, port=peer_port, url=peer_url)
    logging.getLogger("polystream.worker").info(
        "polystream worker: %s, %d model(s)", config.source, len(config.models.names()))
    run_worker(str(config.store.redis_url), config.models, settings, **options)
    return 0
