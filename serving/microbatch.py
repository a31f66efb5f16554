"""Adaptive micro-batching: concurrent single requests of one event loop scored together in one call.

Each model call has a fixed cost that does not depend on its rows: ONNX Runtime's (the published XGBoost
model: 0.16 ms for one row, 0.21 ms for four) and the encoder's fixed number of numpy operations (0.08 ms for one
row, 0.4 ms for 32). Scored one by one, concurrent POST /v1/predict requests spend the worker's core on it.

`MicroBatcher.submit(item)` queues the item in the loop's open batch and awaits its own result; the batch is run,
in one `run(items)` call on the event loop, as soon as one of these happens:
  - it holds `max_batch` items (run at once, by the request that filled it);
  - the loop has gone `idle_rounds` iterations without a new item joining (adaptive: alone, or when the requests
    in flight have all joined, a request waits a few loop iterations, microseconds, not the window);
  - `max_wait_s` has passed since its first item (the bound on what batching adds while the loop stays busy).
Under load the loop stays busy parsing further requests, new items keep joining, and batches grow up to
`max_batch` or the window; at low load they stay small and add next to nothing to a request's latency.

Every item gets the result at its position in what `run` returned. An exception of `run` is given to every
request of that batch (and only of that one); an item whose request was cancelled meanwhile (client gone) is left
out before the call. `run` is called on the loop's thread, one batch at a time, so one call sees one state of
whatever it reads (the service's `score` takes the served model once per call: a hot swap never splits a batch).
Batches are per event loop; nothing is shared between loops.
"""

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

IDLE_ROUNDS: Final = 2  # loop iterations without a new item before a batch is run (see the module doc)


@dataclass(eq=False)
class _Batch(Generic[ItemT, ResultT]):
    """An open batch of one loop: its items, the future of each, and the state of its flush triggers."""

    loop: asyncio.AbstractEventLoop
    items: list[ItemT] = field(default_factory=list)
    futures: list["asyncio.Future[ResultT]"] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None
    seen: int = 0  # items at the last idle check
    quiet: int = 0  # consecutive idle checks without a new item
    closed: bool = False


class MicroBatcher(Generic[ItemT, ResultT]):
    """Runs `run(items) -> results` (one result per item, same order) on batches of concurrently submitted items.

    `max_batch` >= 1 items at most per call; `max_wait_s` > 0 the most a batch stays open; `idle_rounds` >= 1 the
    loop iterations without a new item after which it is run anyway (`IDLE_ROUNDS` when None).
    """

    def __init__(
        self,
        run: Callable[[Sequence[ItemT]], Sequence[ResultT]],
        *,
        max_batch: int,
        max_wait_s: float,
        idle_rounds: int | None = None,
    ) -> None:
        idle_rounds = IDLE_ROUNDS if idle_rounds is None else idle_rounds
        if max_batch < 1:
            raise ValueError(f"max_batch: {max_batch} is below 1")
        if not max_wait_s > 0:
            raise ValueError(f"max_wait_s: {max_wait_s!r} is not a positive number of seconds")
        if idle_rounds < 1:
            raise ValueError(f"idle_rounds: {idle_rounds} is below 1")
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.idle_rounds = idle_rounds
        self._open: dict[asyncio.AbstractEventLoop, _Batch[ItemT, ResultT]] = {}

    async def submit(self, item: ItemT) -> ResultT:
        """`item`'s result, once its batch has run; the exception of `run` if its batch failed."""
        return await self.enqueue(item)

    def enqueue(self, item: ItemT) -> "asyncio.Future[ResultT]":
        """`submit` without its coroutine: queue `item` in the running loop's open batch and return the future of its
        result (a request awaits it directly; cancelling the future leaves the item out of its batch)."""
        loop = asyncio.get_running_loop()
        batch = self._open.get(loop)
        if batch is None:
            batch = self._open[loop] = _Batch(loop)
            batch.timer = loop.call_later(self.max_wait_s, self._flush, batch)
            loop.call_soon(self._idle_check, batch)
        future: asyncio.Future[ResultT] = loop.create_future()
        batch.items.append(item)
        batch.futures.append(future)
        if len(batch.items) >= self.max_batch:
            self._flush(batch)
        return future

    def _idle_check(self, batch: _Batch[ItemT, ResultT]) -> None:
        """Once per loop iteration while `batch` is open: run it after `idle_rounds` checks without a new item."""
        if batch.closed:
            return
        if len(batch.items) == batch.seen:
            batch.quiet += 1
        else:
            batch.seen, batch.quiet = len(batch.items), 0
        if batch.quiet >= self.idle_rounds:
            self._flush(batch)
        else:
            batch.loop.call_soon(self._idle_check, batch)

    def _flush(self, batch: _Batch[ItemT, ResultT]) -> None:
        """Close `batch` and run its live items (the first trigger wins; the others find it closed)."""
        if batch.closed:
            return
        batch.closed = True
        if self._open.get(batch.loop) is batch:
            del self._open[batch.loop]
        if batch.timer is not None:
            batch.timer.cancel()
        live = [(item, future) for item, future in zip(batch.items, batch.futures, strict=True) if not future.done()]
        if not live:
            return
        try:
            results = self._run([item for item, _ in live])
            if len(results) != len(live):
                raise RuntimeError(f"micro-batch: {len(results)} results for {len(live)} items")
        except Exception as exc:  # whatever failed the call fails each of its requests, and only those
            for _, future in live:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(live, results, strict=True):
            if not future.done():
                future.set_result(result)
