"""Pipelines: several recipes and evaluations in sequence, above ``train``. ``demo`` (world ->
tiny model -> SFT -> predict -> score), ``compare`` (every method from one start, one budget,
one evaluation) and ``evaluate.predict_and_score``, the step both share."""
