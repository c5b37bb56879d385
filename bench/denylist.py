"""What the access-token denylist costs a ``/userinfo`` request, in process (no HTTP):

- a check on a warm copy (the common case: two dictionary lookups);
- the fetch of new entries that the first check after each second pays (one indexed SELECT);
- a whole ``TokenService.userinfo`` call, for scale.

    .venv/bin/python bench/denylist.py [--entries 1000] [--recent 10] [--postgres URL]

The database gets ``--entries`` live denylist entries first (a busy hour of revocations), of
which ``--recent`` were created within the fetch's overlap window (``OVERLAP_SECONDS``) and so
are read again by every fetch.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deviceflow.protocol import tokens
from deviceflow.protocol.models import (
    DEVICE_CODE_GRANT,
    DeniedToken,
    DenyKind,
    DevicePolicy,
    TokenPolicy,
    User,
)
from deviceflow.server.denylist import OVERLAP_SECONDS
from deviceflow.server.keys import load_keyring
from deviceflow.server.ratelimit import BruteForcePolicy, Limiter
from deviceflow.server.secretbox import SecretBox
from deviceflow.server.service import DeviceFlowService, ServicePolicy
from deviceflow.storage.sql.engine import create_store, upgrade

ISSUER = "http://127.0.0.1:8000"


async def measure(url: str, entries: int, recent: int) -> dict[str, float]:
    await upgrade(url)
    store = create_store(url)
    try:
        keyring = await load_keyring(store, SecretBox.generate(), "ES256")
        now = time.time()
        user = User("sub-bench", "bench", "Bench", "$argon2id$unused", now)
        async with store.unit_of_work() as uow:
            await uow.users.add(user)
            for n in range(entries):
                created = now if n < recent else now - 2 * OVERLAP_SECONDS
                await uow.denylist.add(DeniedToken(DenyKind.JTI, f"jti-{n}", now + 3600,
                                                   created))
            await uow.commit()
        policy = ServicePolicy(DevicePolicy(ISSUER + "/device"), TokenPolicy(ISSUER),
                               (DEVICE_CODE_GRANT,))
        service = DeviceFlowService(store, keyring, policy, Limiter(BruteForcePolicy()))
        grant = tokens.Grant(user, "tv", ("openid", "profile"), now, DEVICE_CODE_GRANT, "fam")
        access = tokens.issue(grant, policy.token, keyring.signer, now, "jti-live", None)
        denylist = service.ctx.denylist
        await denylist.denied("jti-live", "fam")  # the first, full read

        checks = 200_000
        start = time.perf_counter()
        for _ in range(checks):
            await denylist.denied("jti-live", "fam")
        check = (time.perf_counter() - start) / checks

        fetches = 500
        start = time.perf_counter()
        for _ in range(fetches):
            denylist._next_fetch = 0.0  # the first check after a second
            await denylist.denied("jti-live", "fam")
        fetch = (time.perf_counter() - start) / fetches

        calls = 5_000
        start = time.perf_counter()
        for _ in range(calls):
            await service.tokens.userinfo(access.access_token)
        userinfo = (time.perf_counter() - start) / calls
        return {"check_us": check * 1e6, "fetch_us": fetch * 1e6, "userinfo_us": userinfo * 1e6}
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--recent", type=int, default=10)
    parser.add_argument("--postgres", help="an empty PostgreSQL database URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite:///{tmp}/bench.sqlite3"}
        if args.postgres:
            urls["postgres"] = args.postgres
        for name, url in urls.items():
            result = asyncio.run(measure(url, args.entries, args.recent))
            print(f"{name}: check on a warm copy {result['check_us']:.2f} µs; "
                  f"fetch of new entries (once a second) {result['fetch_us']:.0f} µs; "
                  f"whole userinfo call {result['userinfo_us']:.0f} µs")


if __name__ == "__main__":
    main()
