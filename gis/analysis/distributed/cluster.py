"""The dask cluster analyses run on: a scheduler address in production, else a LocalCluster."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic_settings import BaseSettings, SettingsConfigDict

from gis.platform.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from distributed import Client

T = TypeVar("T")


class DaskSettings(BaseSettings):
    """Where the dask scheduler is and where the case archive lies (CITYGRID_DASK_*)."""

    model_config = SettingsConfigDict(env_prefix="CITYGRID_DASK_", extra="ignore")

    # tcp://host:8786 of a running `dask scheduler` whose workers have citygrid installed
    # and see `archive` at the same path; unset: a LocalCluster of `workers` processes.
    scheduler: str | None = None
    workers: int = 2
    archive: Path = PROJECT_ROOT / ".citygrid" / "archive"


@contextmanager
def dask_client(settings: DaskSettings | None = None, *, workers: int | None = None,
                processes: bool = True) -> Iterator[Client]:
    """A dask.distributed Client on the configured scheduler or on a new LocalCluster."""
    # Imported here: distributed takes a second to import and only analyses need it.
    from distributed import Client, LocalCluster

    settings = settings or DaskSettings()
    if settings.scheduler:
        with Client(settings.scheduler) as client:
            yield client
        return
    # One thread per worker: the work is numpy/pandas/h3 in Python, which holds the GIL.
    with LocalCluster(n_workers=workers or settings.workers, threads_per_worker=1,
                      processes=processes, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        yield client


def run_map(client: Client | None, function: Callable[..., T], items: Sequence[Any],
            **kwargs: Any) -> list[T]:
    """`function(item, **kwargs)` for every item: on the cluster, or in this process if None."""
    if client is None:
        return [function(item, **kwargs) for item in items]
    # pure=False: a task reads files or the database, so equal arguments need not mean
    # equal results if the archive was rewritten in between.
    # The options are bound in a partial: dask would read keyword values (lists of strings,
    # tuples) as references into its task graph.
    futures = client.map(partial(function, **kwargs), list(items), pure=False)
    return list(client.gather(futures))
