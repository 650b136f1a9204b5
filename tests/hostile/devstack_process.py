"""``ensign dev``'s four services in a child process, for tests that must survive a crash.

Run as ``python -m tests.hostile.devstack_process DATA_DIR REDIS_URL PREFIX``: it starts the dev
stack on free loopback ports, prints one JSON line with the URLs, and serves until stdin closes
or SIGTERM. A hostile test that crashed this process sees it exit with a signal instead of
taking pytest down with it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from ensign.config import DeliveryLimits
from stack.devstack import DEV_RECURSION_LIMIT, DevStack, DevStackSettings
from stack.serve import restore_recursion_limit


async def main(data_dir: str, redis_url: str, prefix: str) -> None:
    settings = DevStackSettings(
        data_dir=Path(data_dir),
        redis_url=redis_url,
        redis_prefix=prefix,
        chain_port=0,
        backend_port=0,
        gateway_port=0,
        delivery_port=0,
        # Thousands of requests from one address: the per-address bucket would answer 429 (a 4xx,
        # as wanted) but also refuse the suite's own sign-ups. Rate limits have their own tests.
        delivery_limits=DeliveryLimits(address=None, login=None),
    )
    restore_recursion_limit(DEV_RECURSION_LIMIT)  # as `ensign dev` does (stack.devstack.run)
    stack = await DevStack(settings).start()
    try:
        urls = {
            "chain": stack.chain_url,
            "backend": stack.backend_url,
            "gateway": stack.gateway_url,
            "delivery": stack.delivery_url,
            "resolver": stack.chain.offchain_resolver.address if stack.chain else "",
        }
        print(json.dumps(urls), flush=True)
        # Serve until the parent closes our stdin (or kills us).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await stack.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
