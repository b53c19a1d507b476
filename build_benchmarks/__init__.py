"""How2R / How2QA / subtitle-query builders, finetuning heads and evaluation."""
