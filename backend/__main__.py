"""``python -m backend``: run the profile backend with settings from the environment."""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from backend.app import create_app
from ensign.config import BackendSettings
from ensign.errors import EnsignError


def main() -> int:
    """Serve until interrupted; a configuration error prints its message and exits with status 2."""
    try:
        settings = BackendSettings.from_env()
        app = create_app(settings)
    except EnsignError as exc:
        print(f"ensign backend: {exc.message}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    web.run_app(app, host=settings.host, port=settings.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
