"""The native libraries' per-call thread pools are limited as the settings say."""

from __future__ import annotations

import sklearn.neighbors  # noqa: F401 - loads scikit-learn's OpenMP runtime, as a model does
from threadpoolctl import ThreadpoolController, threadpool_limits

from app.runtimes import limit_native_threads
from app.settings import Settings


def _threads(user_api: str) -> list[int]:
    return [p["num_threads"] for p in ThreadpoolController().info() if p["user_api"] == user_api]


def test_blas_and_openmp_pools_are_limited_to_the_setting() -> None:
    original = ThreadpoolController().info()
    try:
        threadpool_limits(limits=2)  # a known start, whatever this machine's core count
        assert _threads("blas") and set(_threads("blas")) == {2}
        limit_native_threads(1, 1)
        assert set(_threads("blas")) == {1}
        assert not _threads("openmp") or set(_threads("openmp")) == {1}
        limit_native_threads(0, 0)  # 0 leaves each pool as it is
        assert set(_threads("blas")) == {1}
    finally:
        threadpool_limits(limits=original)


def test_one_thread_each_by_default() -> None:
    repository = Settings().repository
    assert (repository.blas_threads, repository.openmp_threads) == (1, 1)
