"""Training: ``plan`` (a method's stages and schedules), ``state`` (a run's state and its
snapshots), ``step`` (one optimisation step), ``loop`` (``train``), ``evaluate`` (criteria, best
checkpoint, results, ``freqalign eval``), ``runlog``, ``runlock``, ``distributed``, ``report``,
and the ``compare``, ``study`` and ``study_map`` drivers. A run's formats (config, checkpoints,
folder) are ``freqalign.run``'s."""
