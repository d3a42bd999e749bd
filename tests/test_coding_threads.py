"""Torch's intra-op thread count is a per-OS-thread setting (OpenMP's and MKL's, set by torch.set_num_threads
in the calling thread), so the entropy path's one-thread rule must be applied and undone by each Python thread
for itself: a thread that enters while another is inside still runs on one thread, every thread gets its own
setting back, and threads that do not code are never touched."""

from __future__ import annotations

import threading

import torch

from onestep.methods.pipeline import deterministic, rendering


def _run(workers: list[threading.Thread]) -> None:
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def test_each_coding_thread_runs_its_entropy_path_on_one_thread_and_gets_its_setting_back() -> None:
    seen: dict[str, int] = {}
    inside = threading.Barrier(2, timeout=10)

    def code(name: str, threads: int) -> None:
        torch.set_num_threads(threads)  # this thread's own setting, made before any coding
        with deterministic("cpu"):
            inside.wait()  # both threads are inside the entropy path at once
            seen[name] = torch.get_num_threads()
            inside.wait()
        seen[name + " after"] = torch.get_num_threads()

    _run([threading.Thread(target=code, args=(name, 2)) for name in ("a", "b")])
    assert seen == {"a": 1, "b": 1, "a after": 2, "b after": 2}


def test_threads_that_do_not_code_keep_their_setting() -> None:
    before = torch.get_num_threads()
    entered, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def code() -> None:
        with deterministic("cpu"):
            entered.set()
            release.wait(10)

    worker = threading.Thread(target=code)
    worker.start()
    assert entered.wait(10)
    seen.append(torch.get_num_threads())  # the main thread, while another thread is in the entropy path
    release.set()
    worker.join()
    assert seen == [before] and torch.get_num_threads() == before


def test_rendering_runs_at_the_callers_setting() -> None:
    seen: list[int] = []

    def render() -> None:
        torch.set_num_threads(2)
        with deterministic("cpu"):
            pass
        with rendering("cpu"):
            seen.append(torch.get_num_threads())

    _run([threading.Thread(target=render)])
    assert seen == [2]
