"""Per-individual passes of the importance likelihood, in this process or over Dask.

Every quantity of an importance pass is computed row by row: individual ``i``'s
proposal draws are keyed by its ID, its likelihood depends on its records
alone, and the kernels never mix rows. A pass therefore splits into blocks of
individuals that can run anywhere and be put back in row order, and the sums
over individuals are taken afterwards over the whole array (never per block),
so a sharded pass gives the same numbers bit for bit as the in-process one.

:class:`RowShards` runs the blocks: in this process (``client=None``), or as
tasks of a ``dask.distributed`` client, to which the objective is scattered once
(a lean copy without evaluation caches) and reused by every pass.
"""

from __future__ import annotations

import copy

import numpy as np

__all__ = ["RowShards", "resolve_client"]


def resolve_client(scheduler):
    """``(client, owned)`` for the estimator's ``scheduler`` parameter.

    ``None``: no client. ``"local"``: a new ``LocalCluster`` of 2 single-threaded
    worker processes (owned: the caller closes it). A string: the address of a
    running scheduler (owned). A ``distributed.Client``: used as it is.

    Examples
    --------
    >>> resolve_client(None)
    (None, False)
    """
    if scheduler is None:
        return None, False
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:  # pragma: no cover - dask is a dependency
        raise ImportError(
            "scheduler= needs dask.distributed: pip install 'dask[distributed]'"
        ) from err
    if isinstance(scheduler, Client):
        return scheduler, False
    if scheduler == "local":
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True)
        return Client(cluster), True
    if isinstance(scheduler, str):
        return Client(scheduler), True
    raise TypeError(f"scheduler must be None, 'local', an address or a Client, got {scheduler!r}")


def close_client(client, owned):
    """Close a client (and its LocalCluster) that :func:`resolve_client` started."""
    if client is None or not owned:
        return
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def _lean(objective):
    """A copy without evaluation caches (they can hold all draws) and without shards."""
    lean = copy.copy(objective)
    for name in ("_cache", "_draws_cache"):
        if hasattr(lean, name):
            setattr(lean, name, (None, None))
    if hasattr(lean, "shards"):
        lean.shards = None
    return lean


def _remote(objective, func, rows, args):
    return func(objective, rows, *args)


class RowShards:
    """Runs ``func(objective, rows, *args)`` over blocks of rows, here or on a Dask client.

    Parameters
    ----------
    client : distributed.Client or None
        Where blocks run (this process when None).
    n_blocks : int, default=None
        Blocks per pass on a client (twice its worker threads when None).

    Examples
    --------
    >>> import numpy as np
    >>> shards = RowShards(None)
    >>> shards.map(lambda obj, rows: rows * obj, 3, [np.arange(2), np.arange(2, 4)])
    [array([0, 3]), array([6, 9])]
    """

    def __init__(self, client, n_blocks=None):
        self.client = client
        self.n_blocks = n_blocks
        self._scattered = {}

    def blocks(self, n, per_row):
        """Row blocks of at most ``per_row`` individuals (more, smaller ones on a client)."""
        if self.client is not None:
            target = self.n_blocks or 2 * max(1, sum(self.client.nthreads().values()))
            per_row = min(per_row, max(1, -(-n // target)))
        return [np.arange(s, min(n, s + per_row)) for s in range(0, n, per_row)]

    def map(self, func, objective, blocks, *args):
        """``[func(objective, rows, *args) for rows in blocks]``, in order."""
        if self.client is None or len(blocks) < 2:
            return [func(objective, rows, *args) for rows in blocks]
        token = getattr(objective, "_shard_token", None)
        future = self._scattered.get(token)
        if future is None:
            token = object()
            objective._shard_token = token
            future = self.client.scatter(_lean(objective), broadcast=True)
            self._scattered = {token: future}  # one objective at a time on the workers
        futures = [
            self.client.submit(_remote, future, func, rows, args, pure=False) for rows in blocks
        ]
        return self.client.gather(futures)

    def __getstate__(self):  # travels without its client (a worker never shards further)
        return {"client": None, "n_blocks": self.n_blocks, "_scattered": {}}
