"""Every file in configs/ loads into its model, opens with the command that runs it, and (for
the examples) holds every option at its default."""

from __future__ import annotations

from pathlib import Path

import pytest

from build_benchmarks.finetune.config import (
    FinetuneConfig,
    FinetuneConfigError,
    load_finetune_config,
)
from hero_data.configmodel import read_mapping
from hero_model.config import build_config
from hero_model.train import load_train_config
from pipelines.config import build_config as build_run_config
from pipelines.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FILES = sorted(p for p in CONFIGS.rglob("*") if p.is_file())


def _load(path: Path) -> object:
    if path.parent.name == "model":
        return build_config(path)
    if path.parent.name == "train":
        return load_train_config(path)
    if path.name == "run.example.yaml":
        return build_run_config(load_config(str(path)), {}, source=str(path))
    if path.name == "finetune.example.yaml":
        return load_finetune_config(path)
    raise AssertionError(f"{path}: no model is known for this config file; add it here")


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_config_file_loads_into_its_model(path: Path) -> None:
    assert path.read_text(encoding="utf-8").startswith("# hero ")
    assert _load(path) is not None


def test_the_finetune_example_holds_every_option_at_its_default() -> None:
    path = CONFIGS / "finetune.example.yaml"
    assert set(read_mapping(str(path), FinetuneConfigError)) == set(FinetuneConfig.model_fields)
    assert load_finetune_config(path) == FinetuneConfig()


def test_finetune_flags_win_over_the_file_and_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "ft.yaml"
    path.write_text("batch_size: 8\nlr: 1.0e-4\nranking: {max_pred_l: 10}\n", encoding="utf-8")
    cfg = load_finetune_config(path, {"batch_size": 4, "lr": None, "ranking": {"alpha": 5.0}})
    assert (cfg.batch_size, cfg.lr) == (4, 1e-4)
    assert (cfg.ranking.max_pred_l, cfg.ranking.alpha) == (10, 5.0)
    path.write_text("bach_size: 8\n", encoding="utf-8")
    with pytest.raises(FinetuneConfigError, match=r"unknown option 'bach_size'; did you mean") as e:
        load_finetune_config(path)
    assert (e.value.source, e.value.key) == (str(path), "bach_size")
    path.write_text("ranking: {min_pred_l: 5, max_pred_l: 3}\n", encoding="utf-8")
    with pytest.raises(FinetuneConfigError, match=r"ft\.yaml: max_pred_l \(3\) must") as e:
        load_finetune_config(path)
    assert e.value.key == "ranking.max_pred_l"
