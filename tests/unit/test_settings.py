import asyncio
import threading

import pytest

import compound
from compound.core.errors import ConfigurationError


def test_context_overrides_and_restores():
    base = compound.get_settings().max_concurrency
    with compound.context(max_concurrency=3) as s:
        assert s.max_concurrency == 3
        assert compound.get_settings().max_concurrency == 3
        with compound.context(cache=False):
            assert compound.get_settings().max_concurrency == 3
            assert compound.get_settings().cache is False
    assert compound.get_settings().max_concurrency == base


def test_unknown_setting_names_the_valid_ones():
    with pytest.raises(ConfigurationError, match="max_concurrency"):
        compound.configure(max_concurency=3)


def test_context_is_per_thread():
    seen = {}
    barrier = threading.Barrier(2)

    def worker(n):
        with compound.context(max_concurrency=n):
            barrier.wait()  # both threads are inside their own context at once
            seen[n] = compound.get_settings().max_concurrency

    threads = [threading.Thread(target=worker, args=(n,)) for n in (2, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {2: 2, 5: 5}


def test_context_is_per_asyncio_task():
    async def task(n):
        with compound.context(max_concurrency=n):
            await asyncio.sleep(0.01)
            return compound.get_settings().max_concurrency

    async def main():
        return await asyncio.gather(*(task(n) for n in (1, 2, 3, 4)))

    assert asyncio.run(main()) == [1, 2, 3, 4]


def test_configure_changes_the_default_seen_by_new_threads():
    compound.configure(max_concurrency=7)
    out = []
    t = threading.Thread(target=lambda: out.append(compound.get_settings().max_concurrency))
    t.start()
    t.join()
    assert out == [7]
