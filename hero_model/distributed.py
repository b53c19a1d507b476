"""Data-parallel HERO pretraining on several GPUs or nodes with Ray Train (``TorchTrainer``).

:func:`train_distributed` starts ``num_workers`` Ray Train workers; Ray Train initialises the
``torch.distributed`` process group (NCCL on GPUs, gloo on CPUs) and each worker runs the same
recipe as a single-process run (:func:`hero_model.train.run_training`), which wraps the model in
DistributedDataParallel and takes its share of each step's micro-batches. So a run is the same
command and the same run folder whatever the number of workers, and a checkpoint written by N
workers resumes on M (the batches stay exact; only the dropout RNG is reseeded when N != M).

Checkpoints are the recipe's own (rank 0 writes them into ``RUN_DIR/checkpoints``), not Ray
Train checkpoints: the run folder must therefore be on storage every node can reach (as must
the datasets). Ray Train keeps its own bookkeeping under ``RUN_DIR/ray``. When a worker dies,
Ray Train restarts the group (up to ``max_failures`` times) and the workers resume from the
newest checkpoint of this run.

Ray: ``address=None`` starts a private local instance (``ray.init(address="local")``, as
``hero run`` does) and shuts it down afterwards; an address (or ``RAY_ADDRESS``) joins a
cluster.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

# Ray's uv integration would start workers through `uv run`, which re-resolves the project
# environment per worker; the workers use this interpreter's environment instead.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

from hero_model.runtime import find_checkpoint
from hero_model.train import TrainConfig, check_run

log = logging.getLogger(__name__)

__all__ = ["train_distributed"]


def _worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: run the recipe in the process group Ray Train set up."""
    import ray.train
    import ray.train.torch

    logging.basicConfig(level=config["log_level"], format="%(levelname)s %(name)s: %(message)s")
    if config["progress"]:  # progress lines (with the running losses) reach the driver's log
        logging.getLogger("hero.progress").setLevel(logging.INFO)
    from hero_model.train import run_training

    cfg = TrainConfig(**config["train"])
    run_dir = Path(config["run_dir"])
    # A restart after a worker failure resumes this run's newest checkpoint.
    resume = config["resume"] or _has_own_checkpoint(run_dir, config["run_id"])
    run_training(
        cfg,
        run_dir,
        resume=resume,
        stop_at=config["stop_at"],
        device=ray.train.torch.get_device(),
        progress=config["progress"],
        report=lambda metrics: ray.train.report(metrics),
    )


def _has_own_checkpoint(run_dir: Path, run_id: str) -> bool:
    """Whether ``run_dir`` holds a checkpoint written by this launch (``run_id``)."""
    marker = run_dir / "ray" / "run_id"
    found = find_checkpoint(run_dir)
    if found is None or not marker.is_file():
        return False
    return marker.read_text(encoding="utf-8").strip() == run_id and (
        found.stat().st_mtime >= marker.stat().st_mtime
    )


def _start_ray(address: str | None) -> bool:
    """Start (or join) Ray; returns whether this call started it (and should stop it).

    Workers' logs go to the driver: they carry the progress lines and any error.
    """
    import ray

    if ray.is_initialized():
        return False
    ray.init(
        address=address or os.environ.get("RAY_ADDRESS") or "local",
        include_dashboard=False,
        logging_level="WARNING",
        log_to_driver=True,
    )
    return True


def train_distributed(
    cfg: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    num_workers: int,
    address: str | None = None,
    use_gpu: bool | None = None,
    cpus_per_worker: float = 1.0,
    resume: bool = False,
    stop_at: int | None = None,
    max_failures: int = 0,
    backend: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train with ``num_workers`` data-parallel Ray Train workers; returns the run summary.

    Args:
        cfg: the training config; ``batch_size`` is per worker, so the global batch is
            ``num_workers × accumulation × batch_size`` clips.
        run_dir: the run folder (on storage every node sees).
        num_workers: training processes (one per GPU).
        address: Ray cluster address; ``None``: ``RAY_ADDRESS`` or a private local instance.
        use_gpu: one GPU per worker; ``None``: when ``cfg.device`` is not ``cpu`` and the
            cluster has GPUs.
        cpus_per_worker: CPUs Ray reserves per worker (its DataLoader processes use more).
        resume: continue from the newest checkpoint in ``run_dir``.
        stop_at: stop after this step (with a checkpoint), as :func:`run_training`.
        max_failures: worker-group restarts Ray Train may make after a failure.
        backend: ``torch.distributed`` backend; ``None``: NCCL on GPUs, gloo on CPUs.
        progress: worker 0 logs progress lines with the running losses (every 10 s).
    """
    if num_workers < 1:
        raise ValueError(f"num_workers must be at least 1, got {num_workers}")
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    run_dir = Path(run_dir).resolve()
    check_run(cfg, run_dir, resume=resume)  # user errors here, before Ray starts
    run_dir.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex
    (run_dir / "ray").mkdir(exist_ok=True)
    (run_dir / "ray" / "run_id").write_text(run_id + "\n", encoding="utf-8")
    started = _start_ray(address)
    try:
        if use_gpu is None:
            use_gpu = cfg.device != "cpu" and ray.cluster_resources().get("GPU", 0) > 0
        if backend is None:
            backend = "nccl" if use_gpu else "gloo"
        train_dict = cfg.to_dict()
        train_dict["data"] = tuple(str(Path(p).resolve()) for p in cfg.data)
        for key in ("betas", "mix_weights"):
            if train_dict[key] is not None:
                train_dict[key] = tuple(train_dict[key])
        trainer = TorchTrainer(
            _worker,
            train_loop_config={
                "train": train_dict,
                "run_dir": str(run_dir),
                "run_id": run_id,
                "resume": resume,
                "stop_at": stop_at,
                "progress": progress,
                "log_level": logging.getLogger().getEffectiveLevel(),
            },
            torch_config=TorchConfig(backend=backend),
            scaling_config=ScalingConfig(
                num_workers=num_workers,
                use_gpu=use_gpu,
                resources_per_worker={"CPU": cpus_per_worker},  # plus 1 GPU with use_gpu
            ),
            run_config=RunConfig(
                name="train",
                storage_path=str(run_dir / "ray"),
                failure_config=FailureConfig(max_failures=max_failures),
            ),
        )
        log.info(
            "Ray Train: %d workers (%s, %s)", num_workers, "GPU" if use_gpu else "CPU", backend
        )
        trainer.fit()  # raises ray.train.TrainingFailedError when the workers fail
    finally:
        if started:
            ray.shutdown()
    return json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
