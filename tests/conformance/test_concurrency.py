"""No acknowledged write is lost: concurrent tasks, and concurrent processes, on one session."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from mofa.persistence import BaseStore, NewMessage, StoreClosedError, open_store


def _check_sequence(seqs: list[int], expected: int) -> None:
    assert len(seqs) == expected
    assert seqs == list(range(1, expected + 1)), "seq must be gap-free and without duplicates"


async def test_eight_tasks_append_to_one_session(store: BaseStore) -> None:
    await store.create_session("shared")

    async def writer(task: int) -> list[int]:
        return [
            (await store.append_message("shared", "user", f"{task}:{n}")).seq for n in range(250)
        ]

    returned = await asyncio.gather(*(writer(task) for task in range(8)))
    history = await store.list_messages("shared")
    _check_sequence([m.seq for m in history], 2000)
    assert sorted(seq for seqs in returned for seq in seqs) == list(range(1, 2001))
    assert sorted(m.content for m in history) == sorted(
        f"{task}:{n}" for task in range(8) for n in range(250)
    )
    for task in range(8):  # each writer's messages keep that writer's order
        mine = [int(m.content.split(":")[1]) for m in history if m.content.startswith(f"{task}:")]
        assert mine == list(range(250))
    assert await store.count_messages("shared") == 2000


async def test_sixteen_tasks_save_state_in_one_session(store: BaseStore) -> None:
    # Every save is acknowledged with its own version: a version collision between two
    # concurrent saves is the store's to resolve, however many tasks contend.
    await store.create_session("s")

    async def saver(task: int) -> list[int]:
        return [(await store.save_state("s", {"task": task, "i": i})).version for i in range(50)]

    versions = sorted(
        v for batch in await asyncio.gather(*(saver(t) for t in range(16))) for v in batch
    )
    assert versions == list(range(1, 801))
    latest = await store.get_state("s")
    assert latest is not None
    assert latest.version == 800
    assert [state.version for state in await store.list_states("s", limit=3)] == [800, 799, 798]


async def test_a_loop_of_calls_lets_other_tasks_run(store: BaseStore) -> None:
    await store.create_session("s")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    running = asyncio.create_task(ticker())
    try:
        for n in range(200):
            await store.append_message("s", "user", str(n))
            await store.get_session("s")
    finally:
        running.cancel()
    assert ticks >= 200  # at least once per call: no call keeps the loop to itself


async def test_concurrent_batches_and_singles(store: BaseStore) -> None:
    await store.create_session("s")

    async def batches(task: int) -> None:
        for n in range(10):
            await store.append_messages(
                "s", [NewMessage("user", f"b{task}:{n}:{i}") for i in range(10)]
            )

    async def singles(task: int) -> None:
        for n in range(50):
            await store.append_message("s", "assistant", f"s{task}:{n}")

    await asyncio.gather(batches(0), batches(1), singles(0), singles(1))
    history = await store.list_messages("s")
    _check_sequence([m.seq for m in history], 300)
    for task in range(2):  # a batch stays contiguous
        for n in range(10):
            seqs = [m.seq for m in history if m.content.startswith(f"b{task}:{n}:")]
            assert seqs == list(range(seqs[0], seqs[0] + 10))


async def test_closed_store_refuses_work(empty_url: str) -> None:
    store = await open_store(empty_url)
    await store.close()
    await store.close()
    with pytest.raises(StoreClosedError):
        await store.create_session("s")
    with pytest.raises(StoreClosedError):
        await store.list_sessions()


@pytest.mark.parametrize("delay", [0.0, 0.005, 0.02])
async def test_closing_while_calls_are_in_flight(empty_url: str, delay: float) -> None:
    # Each call either completes (and an append then stays stored) or raises
    # StoreClosedError having done nothing; no driver error reaches the caller.
    store = await open_store(empty_url)
    await store.create_session("s")

    async def call(n: int) -> int | None:
        if n % 3 == 0:
            await store.list_recent_messages("s", limit=5)
            return None
        return (await store.append_message("s", "user", f"m{n}")).seq

    tasks = [asyncio.create_task(call(n)) for n in range(120)]
    await asyncio.sleep(delay)
    await store.close()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    unexpected = [o for o in outcomes if isinstance(o, BaseException)]
    others = [o for o in unexpected if not isinstance(o, StoreClosedError)]
    assert not others, others[:3]
    acknowledged = sorted(o for o in outcomes if isinstance(o, int))
    if empty_url.startswith("memory"):
        return  # nothing outlives the store
    async with await open_store(empty_url) as reopened:
        stored = [m.seq for m in await reopened.list_messages("s")]
    assert set(acknowledged) <= set(stored)
    assert stored == list(range(1, len(stored) + 1))


async def test_closing_the_store_stops_an_iteration_with_a_clear_error(empty_url: str) -> None:
    store = await open_store(empty_url)
    await store.create_session("s")
    await store.append_messages("s", [NewMessage("user", str(n)) for n in range(5)])
    seen: list[int] = []

    async def read_and_close_midway() -> None:
        async for message in store.iter_messages("s", batch_size=2):
            seen.append(message.seq)
            if message.seq == 2:
                await store.close()

    with pytest.raises(StoreClosedError):
        await read_and_close_midway()
    assert seen == [1, 2]


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from mofa.persistence import open_store

    async def main(url, tag, count):
        async with await open_store(url) as store:
            for n in range(count):
                await store.append_message("shared", "user", f"{tag}:{n}")
        print("done", flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


async def test_two_processes_append_to_one_session(durable_url: str) -> None:
    async with await open_store(durable_url) as store:
        await store.create_session("shared", agent_id="agent")
    count = 300
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, durable_url, tag, str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("p1", "p2")
    ]
    for process in processes:
        out, err = process.communicate(timeout=240)
        assert process.returncode == 0, err
        assert out.strip() == "done"
    async with await open_store(durable_url) as store:
        history = await store.list_messages("shared")
        _check_sequence([m.seq for m in history], 2 * count)
        for tag in ("p1", "p2"):
            mine = [int(m.content.split(":")[1]) for m in history if m.content.startswith(tag)]
            assert mine == list(range(count))
        session = await store.get_session("shared")
        assert session is not None
        assert session.message_count == 2 * count


async def test_data_survives_reopening(durable_url: str) -> None:
    async with await open_store(durable_url) as store:
        await store.create_session("s", agent_id="a", user_id="u", metadata={"k": "v"})
        await store.append_message("s", "user", "remember me")
        await store.save_state("s", {"step": 3})
    async with await open_store(durable_url) as store:
        session = await store.get_session("s")
        assert session is not None
        assert session.metadata == {"k": "v"}
        assert [m.content for m in await store.list_messages("s")] == ["remember me"]
        state = await store.get_state("s")
        assert state is not None
        assert state.state == {"step": 3}


async def test_two_processes_connect_at_once(durable_url: str) -> None:
    """Schema creation on connect is safe when several processes race to do it."""
    script = textwrap.dedent(
        """
        import asyncio, sys
        from mofa.persistence import open_store
        async def main(url, tag):
            async with await open_store(url) as store:
                await store.create_session(tag)
        asyncio.run(main(sys.argv[1], sys.argv[2]))
        """
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, durable_url, f"s{n}"], stderr=subprocess.PIPE, text=True
        )
        for n in range(4)
    ]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    async with await open_store(durable_url) as store:
        assert {s.session_id for s in await store.list_sessions()} == {"s0", "s1", "s2", "s3"}
