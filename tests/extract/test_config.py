"""The extraction config: the names it accepts are the extractor's, and its errors."""

from __future__ import annotations

import pytest

from extract import decode, nvdec, pixels, sampling
from extract.config import BACKENDS, DECODERS, PIXELS, SAMPLINGS, ExtractConfig
from hero_data.errors import OptionError


def test_the_names_a_config_accepts_are_the_extractors() -> None:
    assert BACKENDS == decode.BACKENDS
    assert SAMPLINGS == sampling.SAMPLINGS
    assert PIXELS == pixels.PIXELS
    assert DECODERS == nvdec.DECODERS
    assert ExtractConfig().sampling == sampling.DEFAULT_SAMPLING


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        ({"batch_size": 0}, "batch_size", "batch_size must be at least 1, got 0"),
        ({"device": "gpu"}, "device", "device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        ({"bf16": "yes"}, "bf16", "bf16 must be true or false, got 'yes'"),
        ({"prefetch_step": 4}, "prefetch_step", "did you mean 'prefetch_steps'?"),
        (
            {"pixels": "torch", "backend": "decord"},
            "pixels",
            "pixels torch converts the raw planes PyAV hands out: it needs backend pyav",
        ),
    ],
)
def test_a_bad_option_is_an_option_error_naming_its_key(
    values: dict[str, object], key: str, message: str
) -> None:
    with pytest.raises(OptionError, match=message.replace("?", r"\?")) as e:
        ExtractConfig(**values)  # type: ignore[arg-type]
    assert e.value.key == key


def test_a_config_is_frozen_and_copied_with_changes() -> None:
    cfg = ExtractConfig(batch_size=2.0)  # type: ignore[arg-type]  # a whole float is a whole number
    assert cfg.batch_size == 2 and isinstance(cfg.batch_size, int)
    assert cfg.model_copy(update={"device": "cpu"}).device == "cpu"
    with pytest.raises(Exception, match="frozen"):
        cfg.device = "cpu"  # type: ignore[misc]
