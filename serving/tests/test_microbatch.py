"""MicroBatcher on its own: concurrent items share one call and each gets its own result, batches are bounded by
`max_batch` and the window, a lone item is not held for the window, a failed call fails its own batch only, a
cancelled item is left out, and batches belong to their event loop."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import pytest

from serving.microbatch import MicroBatcher

T = TypeVar("T")
GUARD_S = 10.0  # bounds every test's wait; never reached unless batching is broken


class Recorder:
    """A `run` that remembers each batch it was called with and answers each item times ten."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.calls: list[list[int]] = []
        self.fail_on = fail_on

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.calls.append(list(items))
        if self.fail_on is not None and self.fail_on in items:
            raise RuntimeError(f"model call failed on a batch holding {self.fail_on}")
        return [item * 10 for item in items]


def run_async(main: Callable[[], Awaitable[T]]) -> T:
    async def guarded() -> T:
        return await asyncio.wait_for(main(), GUARD_S)

    return asyncio.run(guarded())


def test_concurrent_items_share_one_call_and_each_gets_its_own_result() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, max_batch=64, max_wait_s=GUARD_S)

    async def main() -> list[int]:
        return await asyncio.gather(*(batcher.submit(i) for i in range(20)))

    assert run_async(main) == [i * 10 for i in range(20)]
    assert run.calls == [list(range(20))]


def test_a_batch_holds_at_most_max_batch_items() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, max_batch=4, max_wait_s=GUARD_S)

    async def main() -> list[int]:
        return await asyncio.gather(*(batcher.submit(i) for i in range(10)))

    assert run_async(main) == [i * 10 for i in range(10)]
    assert run.calls == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_a_lone_item_is_not_held_for_the_window() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, max_batch=64, max_wait_s=3600.0)  # a window the test would never see the end of

    async def main() -> list[int]:
        return [await batcher.submit(i) for i in range(3)]

    assert run_async(main) == [0, 10, 20]
    assert run.calls == [[0], [1], [2]]


def test_while_the_loop_stays_busy_the_window_closes_the_batch() -> None:
    """An item joins at every loop iteration (the idle trigger never fires) for several windows: the window runs
    each batch, in order, none lost."""
    run = Recorder()
    batcher = MicroBatcher(run, max_batch=10**9, max_wait_s=0.01)

    async def main() -> tuple[int, list[int]]:
        loop = asyncio.get_running_loop()
        end = loop.time() + 0.1
        tasks: list[asyncio.Future[int]] = []
        while loop.time() < end:
            tasks.append(asyncio.ensure_future(batcher.submit(len(tasks))))
            await asyncio.sleep(0)
        return len(tasks), list(await asyncio.gather(*tasks))

    submitted, results = run_async(main)

    assert results == [i * 10 for i in range(submitted)]
    assert len(run.calls) > 1
    assert [item for call in run.calls for item in call] == list(range(submitted))


def test_with_the_idle_trigger_off_a_lone_item_waits_for_the_window_only() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, max_batch=64, max_wait_s=0.01, idle_rounds=10**9)

    async def main() -> int:
        return await batcher.submit(7)

    assert run_async(main) == 70
    assert run.calls == [[7]]


def test_a_failed_call_fails_every_item_of_its_batch_and_only_those() -> None:
    run = Recorder(fail_on=13)
    batcher = MicroBatcher(run, max_batch=4, max_wait_s=GUARD_S)

    async def main() -> list[int | BaseException]:
        return await asyncio.gather(*(batcher.submit(i) for i in range(10, 18)), return_exceptions=True)

    results = run_async(main)

    assert run.calls == [[10, 11, 12, 13], [14, 15, 16, 17]]
    assert all(isinstance(result, RuntimeError) and "holding 13" in str(result) for result in results[:4])
    assert results[4:] == [140, 150, 160, 170]


def test_results_of_the_wrong_length_fail_the_batch() -> None:
    batcher: MicroBatcher[int, int] = MicroBatcher(lambda items: [1], max_batch=8, max_wait_s=GUARD_S)

    async def main() -> list[int | BaseException]:
        return await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)

    results = run_async(main)

    assert all(isinstance(result, RuntimeError) and "1 results for 3 items" in str(result) for result in results)


def test_a_cancelled_item_is_left_out_of_the_call() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, max_batch=64, max_wait_s=GUARD_S)

    async def main() -> tuple[int, int, bool]:
        tasks = [asyncio.ensure_future(batcher.submit(i)) for i in range(3)]
        await asyncio.sleep(0)  # every task has joined the open batch; it has not run yet
        tasks[1].cancel()
        first, third = await tasks[0], await tasks[2]
        with pytest.raises(asyncio.CancelledError):
            await tasks[1]
        return first, third, tasks[1].cancelled()

    assert run_async(main) == (0, 20, True)
    assert run.calls == [[0, 2]]


def test_each_event_loop_has_its_own_batches() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, max_batch=64, max_wait_s=GUARD_S)

    async def main() -> list[int]:
        return await asyncio.gather(*(batcher.submit(i) for i in range(3)))

    assert run_async(main) == [0, 10, 20]
    assert run_async(main) == [0, 10, 20]  # a new loop: nothing left over from the first
    assert run.calls == [[0, 1, 2], [0, 1, 2]]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_batch": 0, "max_wait_s": 0.002}, "max_batch: 0 is below 1"),
        ({"max_batch": 8, "max_wait_s": 0.0}, "max_wait_s: 0.0 is not a positive number"),
        ({"max_batch": 8, "max_wait_s": 0.002, "idle_rounds": 0}, "idle_rounds: 0 is below 1"),
    ],
)
def test_bad_limits_are_refused(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MicroBatcher(Recorder(), **options)  # type: ignore[arg-type]
