"""Where tasks run: in this process, on a pool of local processes, or on a Dask cluster.

Every executor is a context manager whose :meth:`~Executor.run` yields ``(task, result)``
as tasks finish, in whatever order they finish. Nothing about a task's result depends on
where or when it ran: each task is a whole simulation, seeded by its own seed. The sweep
writes results as they come and orders them by task when it summarises.

At most a few tasks per worker are submitted ahead, so a sweep of 100,000 tasks does not
hold 100,000 pending tasks (each carries its scenario text) in memory.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any, Protocol

from swimpy.sweep.tasks import Task, run_task

__all__ = [
    "DaskExecutor",
    "Executor",
    "ExecutorError",
    "ProcessExecutor",
    "SequentialExecutor",
    "TaskError",
    "default_jobs",
    "make_executor",
]

TaskFn = Callable[[Task], dict[str, Any]]
#: Imported once by the fork server, before it forks workers.
PRELOAD = ("swimpy.sim", "swimpy.sweep.tasks")
#: Tasks submitted ahead per worker (enough to keep workers busy between completions).
AHEAD = 4


class ExecutorError(RuntimeError):
    """The executor cannot start (Dask missing, scheduler unreachable, bad --jobs)."""


class TaskError(RuntimeError):
    """A task failed: ``task`` is the task, the cause is chained."""

    def __init__(self, task: Task, message: str) -> None:
        self.task = task
        super().__init__(message)


class Executor(Protocol):
    #: what it is, for the command line ("2 processes", "Dask LocalCluster, 2 workers")
    description: str

    def __enter__(self) -> Executor: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, dict[str, Any]]]: ...


def default_jobs() -> int:
    """Every core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _failed(task: Task, exc: BaseException) -> TaskError:
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return TaskError(task, f"task {task.index} (seed {task.seed}, point {dict(task.point)}) "
                           f"failed: {what}")


class SequentialExecutor:
    """Runs every task in this process, one after the other (``--jobs 1``)."""

    description = "1 process (this one)"

    def __init__(self, fn: TaskFn = run_task) -> None:
        self.fn = fn

    def __enter__(self) -> SequentialExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, dict[str, Any]]]:
        for t in tasks:
            try:
                result = self.fn(t)
            except Exception as exc:
                raise _failed(t, exc) from exc
            yield t, result


class ProcessExecutor:
    """A :class:`concurrent.futures.ProcessPoolExecutor` of ``jobs`` processes.

    Workers are not forked from this process (which may run threads: a notebook, Dask, a
    progress bar): on Linux and macOS they fork from multiprocessing's fork server, which
    imports the simulator once, so a worker starts in milliseconds; elsewhere they are
    spawned (fresh interpreters, each importing swimpy).
    """

    def __init__(
        self, jobs: int, fn: TaskFn = run_task, *, start_method: str | None = None
    ) -> None:
        if jobs < 1:
            raise ExecutorError(f"--jobs {jobs}: expected at least 1")
        self.jobs = jobs
        self.fn = fn
        if start_method is None:
            methods = multiprocessing.get_all_start_methods()
            start_method = "forkserver" if "forkserver" in methods else "spawn"
        self.start_method = start_method
        self.description = f"{jobs} processes"
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> ProcessExecutor:
        ctx = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            ctx.set_forkserver_preload(list(PRELOAD))
        self._pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=ctx)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if exc_type is not None:
            # A failed task or Ctrl-C: stop the tasks still running rather than wait for
            # them (their results would be thrown away anyway).
            terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
            if terminate is not None:
                terminate()
            else:
                for proc in list(getattr(pool, "_processes", {}).values()):
                    proc.terminate()
        pool.shutdown(wait=exc_type is None, cancel_futures=True)

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, dict[str, Any]]]:
        pool = self._pool
        if pool is None:
            raise ExecutorError("use the executor in a with block")
        pending: dict[Future[dict[str, Any]], Task] = {}
        todo = iter(tasks)
        try:
            while True:
                while len(pending) < self.jobs * AHEAD:
                    t = next(todo, None)
                    if t is None:
                        break
                    pending[pool.submit(self.fn, t)] = t
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in sorted(done, key=lambda f: pending[f].index):
                    t = pending.pop(f)
                    try:
                        result = f.result()
                    except BrokenProcessPool as exc:
                        raise TaskError(
                            t, f"a worker process died while running task {t.index} (seed "
                               f"{t.seed}, point {dict(t.point)}): killed, or out of memory?"
                        ) from exc
                    except Exception as exc:
                        raise _failed(t, exc) from exc
                    yield t, result
        finally:
            for f in pending:
                f.cancel()


class DaskExecutor:
    """Tasks on a Dask ``distributed`` cluster: an existing scheduler (``address``, such as
    ``tcp://10.0.0.5:8786``) or, with ``address`` ``"local"`` or None, a
    :class:`distributed.LocalCluster` of ``workers`` single-threaded workers started here
    (``processes=False`` keeps them in this process: for tests). Every worker needs the
    same swimpy version installed (a task checks)."""

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        processes: bool = True,
        fn: TaskFn = run_task,
    ) -> None:
        self.address = None if address in (None, "local") else address
        self.workers = workers
        self.processes = processes
        self.fn = fn
        self.description = "Dask"
        self._client: Any = None
        self._cluster: Any = None

    def __enter__(self) -> DaskExecutor:
        try:
            # Untyped for mypy; imported only here (an optional extra).
            distributed: Any = importlib.import_module("distributed")
        except ImportError:
            raise ExecutorError(
                "--dask needs Dask's distributed scheduler: pip install 'swimpy[dask]'"
            ) from None
        try:
            if self.address is None:
                self._cluster = distributed.LocalCluster(
                    n_workers=self.workers or default_jobs(),
                    threads_per_worker=1,
                    processes=self.processes,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
                self._client = distributed.Client(self._cluster)
                n = len(self._cluster.workers)
                kind = "processes" if self.processes else "threads in this process"
                self.description = f"Dask LocalCluster, {n} workers ({kind})"
            else:
                self._client = distributed.Client(self.address, timeout="10s")
                threads = sum(self._client.nthreads().values())
                self.description = f"Dask scheduler {self.address}, {threads} worker threads"
        except (OSError, TimeoutError, ValueError) as exc:
            self.__exit__(None, None, None)
            where = self.address or "a LocalCluster"
            raise ExecutorError(f"--dask {where}: cannot start: {exc}") from None
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def run(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, dict[str, Any]]]:
        distributed: Any = importlib.import_module("distributed")
        client = self._client
        if client is None:
            raise ExecutorError("use the executor in a with block")
        ahead = max(AHEAD * max(sum(client.nthreads().values()), 1), 8)
        todo = iter(tasks)
        pending: dict[str, tuple[Task, Any]] = {}

        def submit() -> Any:
            t = next(todo, None)
            if t is None:
                return None
            # The task's own key: the dashboard shows which task it is; pure (same key,
            # same result) by construction.
            fut = client.submit(self.fn, t, key=f"swimpy-sim-{t.key}", retries=0)
            pending[fut.key] = (t, fut)
            return fut

        first = [f for f in (submit() for _ in range(ahead)) if f is not None]
        stream = distributed.as_completed(first)
        try:
            for fut in stream:
                t, _ = pending.pop(fut.key)
                try:
                    result = fut.result()
                except Exception as exc:
                    raise _failed(t, exc) from exc
                finally:
                    fut.release()
                nxt = submit()
                if nxt is not None:
                    stream.add(nxt)
                yield t, result
        finally:
            if pending:
                client.cancel([f for _, f in pending.values()])


def make_executor(
    jobs: int | None = None, dask: str | None = None, *, processes: bool = True
) -> Executor:
    """``dask`` given: a :class:`DaskExecutor`; else ``jobs`` (default: every core)
    processes, or this process alone for 1."""
    if dask is not None:
        return DaskExecutor(dask, workers=jobs, processes=processes)
    n = default_jobs() if jobs is None else jobs
    if n < 1:
        raise ExecutorError(f"--jobs {n}: expected at least 1")
    return SequentialExecutor() if n == 1 else ProcessExecutor(n)
