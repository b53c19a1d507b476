"""The toolkit's option errors: one base (hero_data.errors), one message format, picklable."""

from __future__ import annotations


def test_option_errors_name_their_source_and_survive_pickling() -> None:
    import pickle

    from hero_data.errors import OptionError
    from hero_model.config import HeroConfigError
    from hero_model.train import TrainConfigError
    from pipelines.config import ConfigError

    for cls in (OptionError, ConfigError, HeroConfigError, TrainConfigError):
        e = cls("must be positive", source="run.yaml", key="lr")
        assert str(e) == "run.yaml: must be positive" and isinstance(e, ValueError)
        back = pickle.loads(pickle.dumps(e))  # errors cross Ray's process boundaries
        assert type(back) is cls and (back.problem, back.source, back.key) == (
            "must be positive",
            "run.yaml",
            "lr",
        )
    assert str(OptionError("bad")) == "bad"
