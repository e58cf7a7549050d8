"""Training: ``plan`` (a method's stages and schedules), ``state`` (a run's state and its
snapshots), ``step`` (one optimisation step), ``loop`` (``train``), ``evaluate`` (criteria, best
checkpoint, results), ``config``, ``checkpoint``, ``runlog``, ``distributed``, ``report``, and the
``compare`` and ``study`` drivers."""
