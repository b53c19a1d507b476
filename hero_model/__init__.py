"""The HERO model, its pretraining tasks and trainer. Imports only hero_data.

- :mod:`hero_model.config`: :class:`~hero_model.config.HeroConfig` and ``build_config`` (named
  ``base``/``tiny`` configs, or a YAML file from ``configs/model/``).
- :mod:`hero_model.model`: embedders, the Cross-modal and Temporal Transformers
  (:class:`~hero_model.model.HeroEncoder`) and the VSM query encoder.
- :mod:`hero_model.batch`: ``make_batch`` turns clip records into a padded batch for one
  pretraining task (``mlm``, ``mffr``, ``mnce``, ``fom``, ``vsm``), seeded.
- :mod:`hero_model.pretrain`: the task heads and losses and
  :class:`~hero_model.pretrain.HeroForPretraining`.
- :mod:`hero_model.init`: initialising from RoBERTa-base; loading the reference HERO
  checkpoints (``hero-tv-ht100.pt``) through one name table.
- :mod:`hero_model.data`, :mod:`hero_model.train`, :mod:`hero_model.distributed`: reading
  datasets for training, the pretraining loop, and its distributed wiring.
- :mod:`hero_model.runtime`: what pretraining and finetuning share: autocast and its bf16
  check, AdamW's parameter groups, the schedule, checkpoint files read without unpickling code.

docs/model.md describes the architecture, shapes, tasks and what differs from the reference.
Submodules import torch; importing this package does not.
"""
