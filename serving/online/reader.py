"""Reading the online profile store (asyncio, for the API): one round trip per lookup."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from serving.online.store import LOOKUP_SCRIPT, Keys, VersionMeta


@dataclass(frozen=True)
class Lookup:
    """Profiles (JSON bytes, None for an unknown identifier) in the order asked, all from
    ``meta.version``; ``meta`` is None when nothing has been loaded yet."""

    meta: VersionMeta | None
    profiles: list[bytes | None]


class ProfileReader:
    def __init__(self, client: aioredis.Redis, keys: Keys):
        self._client = client
        self._keys = keys
        self._lookup = client.register_script(LOOKUP_SCRIPT)
        self._metas: dict[str, VersionMeta] = {}  # a version's meta never changes

    async def meta(self, version: str) -> VersionMeta | None:
        meta = self._metas.get(version)
        if meta is None:
            fields = await self._client.hgetall(self._keys.meta(version))
            if not fields:
                return None  # expired, or a load still writing (not served yet)
            meta = self._metas[version] = VersionMeta.from_redis(version, fields)
            if len(self._metas) > 16:
                self._metas.pop(next(iter(self._metas)))
        return meta

    async def served(self) -> VersionMeta | None:
        version = await self._client.get(self._keys.current)
        return await self.meta(version.decode()) if version is not None else None

    async def lookup(self, pseudonyms: Sequence[str]) -> Lookup:
        """The profiles of the persons these identifier pseudonyms belong to."""
        reply = await self._lookup(args=[self._keys.prefix, *pseudonyms])
        if not reply or reply[0] is None:
            return Lookup(None, [None] * len(pseudonyms))
        meta = await self.meta(reply[0].decode())
        profiles = list(reply[1:])
        profiles += [None] * (len(pseudonyms) - len(profiles))  # trailing nils are dropped
        return Lookup(meta, profiles)

    async def members(
        self, version: str, segment_key: str, *, after: str | None, limit: int
    ) -> list[str]:
        """Up to ``limit`` member person ids of a segment in ``version``, in id order, after
        ``after`` (exclusive)."""
        ids = await self._client.zrange(
            self._keys.members(version, segment_key),
            f"({after}" if after else "-",
            "+",
            bylex=True,
            offset=0,
            num=limit,
        )
        return [i.decode() for i in ids]
