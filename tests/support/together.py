"""Calls started at the same instant: threads released together by a barrier, to race a rule
(two logins with one code, thirty guesses against a lock) as parallel requests race it."""

import threading
from collections.abc import Callable


def at_once[T](n: int, call: Callable[[int], T], timeout: float = 180) -> list[T]:
    """call(0) ... call(n - 1) in n threads released together; their results, in finishing order."""
    barrier = threading.Barrier(n)
    results: list[T] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        barrier.wait()
        result = call(i)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert len(results) == n, f"{n - len(results)} of {n} calls did not finish"
    return results
