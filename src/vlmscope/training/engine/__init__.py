"""The training engine: the one loop every gradient trainer runs, and its parts.

- :mod:`~vlmscope.training.engine.loop`: ``run_loop`` (setup, resume,
  steps, validation, checkpoints, finish) over a :class:`LoopSpec`;
- :mod:`~vlmscope.training.engine.checkpoint`: the run directory's
  checkpoints (trainable weights, optimizer, RNG states) and the best weights;
- :mod:`~vlmscope.training.engine.identity`: where a run keeps them and what
  must match to resume from them;
- :mod:`~vlmscope.training.engine.params`: the trainable tensors by name,
  their fingerprint and their AdamW;
- :mod:`~vlmscope.training.engine.distributed`: the accelerator (one
  process, DDP, DeepSpeed) and DeepSpeed's by-hand parts;
- :mod:`~vlmscope.training.engine.schedule`: batch order and the cosine
  learning-rate schedule with warm-up;
- :mod:`~vlmscope.training.engine.tracking`: dvclive curves and metrics.

Nothing here knows which model or loss it trains; the trainers
(:mod:`vlmscope.training.trainers`) pass that in.
"""
