"""`polystream worker --config FILE`: background producers in their own process.

Reads the same config file as `polystream serve` (models, Redis store, background settings) and
runs `polystream.background.worker.run_worker` until SIGTERM/SIGINT. The proxies sharing that
Redis must have `polystream.background.workers: true` to hand their jobs over.
"""

from __future__ import annotations

import logging
from typing import Any

from .app import _construct, quiet_http_logs
from .auth import install_redaction, register_secrets
from .config import ConfigError, load_config


def run(config_path: str, concurrency: int | None = None, log_level: str = "info") -> int:
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
    logging.getLogger("polystream.worker").info(
        "polystream worker: %s, %d model(s)", config.source, len(config.models.names()))
    run_worker(str(config.store.redis_url), config.models, settings, **options)
    return 0
