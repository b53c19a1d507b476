"""How many extraction workers a run starts, sized from each node's own resources.

A worker (one Ray actor holding the feature set's models) must fit on one node: its CPU, GPU and
memory requests are checked against every node's own totals, never against the cluster's sum, so a
cluster of three 1-CPU nodes gets three 0.75-CPU workers, not one 2.75-CPU worker that no node
can hold (which Ray would wait for forever). A request that no node can satisfy is a
:class:`WorkerPlanError` at start. :func:`plan_workers` is a pure function of the node list;
:func:`cluster_nodes` reads that list from Ray.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hero_data.errors import OptionError
from pipelines.config import RunConfig

RESERVED_CPUS = 0.25
"""Kept free of extraction workers on every node: the probe and write tasks (0.1 CPU each) can
always run, so the pipeline always makes progress."""

WORKER_MEMORY_GB = 2.0
"""Memory Ray reserves per extraction worker. Measured: a CPU worker holding ResNet-152 and
SlowFast-R50 and decoding one video peaks at 1.8 GB RSS (ps, 2026-12-06)."""

DEFAULT_CPUS_PER_WORKER = 2.0
"""Without ``cpus_per_worker``: decoding and CPU inference each want more than one core."""

_GB = 1 << 30

log = logging.getLogger(__name__)


class WorkerPlanError(OptionError):
    """No node of the cluster can hold one extraction worker as configured."""


@dataclass(frozen=True)
class NodeResources:
    """One alive node's total resources, as Ray reports them."""

    node_id: str
    cpus: float
    gpus: float = 0.0
    memory_gb: float = 0.0
    address: str = ""


@dataclass(frozen=True)
class WorkerPlan:
    """What to ask Ray for.

    Attributes:
        workers: extraction actors in all.
        cpus: CPUs per actor (Ray's request).
        gpus: GPUs per actor (0 on CPU).
        memory_gb: memory per actor (Ray's request).
        threads: torch threads per actor.
        per_node: how many actors each node can hold (node id -> count).
    """

    workers: int
    cpus: float
    gpus: float
    memory_gb: float
    threads: int
    per_node: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        gpu = f", {self.gpus:g} GPU" if self.gpus else ""
        nodes = sum(1 for n in self.per_node.values() if n)
        return (
            f"{self.workers} extraction workers of {self.cpus:.2f} CPUs{gpu} and "
            f"{self.memory_gb:g} GB each, on {nodes} of {len(self.per_node)} nodes"
        )


def _fits(node: NodeResources, cpus: float, gpus: float, memory_gb: float) -> int:
    """How many workers of this size the node holds."""
    usable = node.cpus - RESERVED_CPUS
    if usable < cpus - 1e-9:
        return 0
    counts = [math.floor(usable / cpus + 1e-9)]
    if gpus:
        counts.append(math.floor(node.gpus / gpus + 1e-9))
    if memory_gb and node.memory_gb:
        counts.append(math.floor(node.memory_gb / memory_gb + 1e-9))
    return max(0, min(counts))


def plan_workers(cfg: RunConfig, nodes: Sequence[NodeResources]) -> WorkerPlan:
    """Size the extraction workers from each node's resources (see the module doc).

    CPU runs: each worker asks for ``cpus_per_worker``, else 2 CPUs, or less where the largest
    node has less (a 1-CPU node holds one 0.75-CPU worker). GPU runs (``device`` not ``cpu``
    and some node has GPUs): ``gpus_per_worker`` each, one per that share of a node's GPUs,
    with the node's CPUs shared among them. ``workers`` caps the count (and, given alone, the
    CPUs per worker are shrunk so that they all fit). Every worker also asks for
    :data:`WORKER_MEMORY_GB` of memory.
    """
    if not nodes:
        raise WorkerPlanError("the Ray cluster has no alive node", "cluster")
    gpu_nodes = [n for n in nodes if n.gpus > 0]
    use_gpu = cfg.device != "cpu" and cfg.gpus_per_worker > 0 and bool(gpu_nodes)
    memory = WORKER_MEMORY_GB
    if use_gpu:
        gpus = cfg.gpus_per_worker
        cpus = cfg.cpus_per_worker
        if cpus is None:
            shares = [
                (n.cpus - RESERVED_CPUS) / max(math.floor(n.gpus / gpus + 1e-9), 1)
                for n in gpu_nodes
                if n.gpus >= gpus - 1e-9
            ]
            cpus = max(min(shares, default=1.0), 0.1)
    else:
        gpus = 0.0
        largest = max(n.cpus for n in nodes) - RESERVED_CPUS
        cpus = cfg.cpus_per_worker
        if cpus is None:
            cpus = min(DEFAULT_CPUS_PER_WORKER, largest)
            if cfg.workers is not None:  # that many workers (that memory holds), sharing CPUs
                total = sum(max(n.cpus - RESERVED_CPUS, 0.0) for n in nodes)
                room = sum(
                    math.floor(n.memory_gb / memory + 1e-9) if n.memory_gb else cfg.workers
                    for n in nodes
                )
                cpus = min(cpus, max(total / max(min(cfg.workers, room), 1), 0.05))
        if cpus <= 0:
            cpus = 0.05
    per_node = {n.node_id: _fits(n, cpus, gpus, memory) for n in nodes}
    capacity = sum(per_node.values())
    if capacity == 0:
        need = f"{cpus:.2f} CPUs" + (f", {gpus:g} GPU" if gpus else "") + f", {memory:g} GB"
        have = "; ".join(
            f"{n.address or n.node_id[:8]}: {n.cpus:g} CPUs"
            + (f", {n.gpus:g} GPUs" if n.gpus else "")
            + (f", {n.memory_gb:.1f} GB" if n.memory_gb else "")
            for n in nodes
        )
        raise WorkerPlanError(
            f"no node can hold an extraction worker: each needs {need} (and "
            f"{RESERVED_CPUS:g} CPU of every node stays free for the light stages); the "
            f"nodes have {have}. Lower cpus_per_worker/gpus_per_worker, or add bigger nodes",
            "cluster",
            "cpus_per_worker" if not gpus else "gpus_per_worker",
        )
    workers = capacity if cfg.workers is None else min(cfg.workers, capacity)
    if cfg.workers is not None and cfg.workers > capacity:
        log.warning(
            "workers: %d asked for, but the nodes hold %d of %.2f CPUs%s each; starting %d",
            cfg.workers,
            capacity,
            cpus,
            f", {gpus:g} GPU" if gpus else "",
            capacity,
        )
    threads = max(1, math.floor(cpus + 0.5))
    return WorkerPlan(workers, cpus, gpus, memory, threads, per_node)


def cluster_nodes() -> list[NodeResources]:
    """The alive nodes of the connected Ray cluster and their total resources."""
    import ray

    out = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        res: dict[str, Any] = node.get("Resources", {})
        out.append(
            NodeResources(
                node_id=node["NodeID"],
                cpus=float(res.get("CPU", 0.0)),
                gpus=float(res.get("GPU", 0.0)),
                memory_gb=float(res.get("memory", 0.0)) / _GB,
                address=str(node.get("NodeManagerAddress", "")),
            )
        )
    return out


def free_resources() -> dict[str, dict[str, float]]:
    """What each node has free now (node id -> {"CPU", "GPU", "memory"}), for messages only;
    ``{}`` when Ray does not say."""
    try:
        from ray._private.state import available_resources_per_node

        return {k: dict(v) for k, v in available_resources_per_node().items()}
    except Exception:  # a private API: only ever used to explain a wait
        return {}
