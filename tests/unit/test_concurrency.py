"""run_sync: the sync facade over the async core."""

import asyncio

import pytest

from compound.core.concurrency import run_sync


class Counted:
    """A result that counts how often it is formatted (a TableRun's repr formats a whole frame)."""

    def __init__(self) -> None:
        self.reprs = 0

    def __repr__(self) -> str:
        self.reprs += 1
        return "Counted()"


def test_the_result_comes_back_without_being_formatted():
    value = Counted()

    async def work():
        await asyncio.sleep(0)
        return value

    assert run_sync(work()) is value
    assert value.reprs == 0


def test_inside_a_running_loop_it_runs_on_a_helper_thread_and_raises_the_error():
    async def fails():
        raise ValueError("bad row")

    async def caller():
        assert run_sync(asyncio.sleep(0, result=3)) == 3
        with pytest.raises(ValueError, match="bad row"):
            run_sync(fails())

    asyncio.run(caller())
