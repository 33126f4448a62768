"""The training engine: the one loop every gradient trainer runs, and its parts.

- :mod:`~vlmscope.training.engine.loop`: ``run_loop`` (setup, steps,
  validation, checkpoint/resume, finish) over a :class:`LoopSpec`;
- :mod:`~vlmscope.training.engine.checkpoint`: the run directory's
  checkpoints (model, optimizer, RNG states) and the resume decision;
- :mod:`~vlmscope.training.engine.schedule`: batch order and the cosine
  learning-rate schedule with warm-up;
- :mod:`~vlmscope.training.engine.tracking`: dvclive curves and metrics.

Nothing here knows which model or loss it trains; the trainers
(:mod:`vlmscope.training.trainers`) pass that in.
"""
