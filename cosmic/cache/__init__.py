"""The cache: one interface (cosmic.cache.interface), Redis and in-process LRU
backends, a resilient wrapper that turns outages into misses."""

from cosmic.cache.interface import Cache, CacheError, CacheUnavailable, CacheView
from cosmic.cache.memory import MemoryCache
from cosmic.cache.redis import RedisCache
from cosmic.cache.resilient import ResilientCache

__all__ = [
    "Cache",
    "CacheError",
    "CacheUnavailable",
    "CacheView",
    "MemoryCache",
    "RedisCache",
    "ResilientCache",
]
