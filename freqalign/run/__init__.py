"""A trained run's formats, below the trainer and scoring: its config (``config``, with the
``methods`` it names), its checkpoints (``checkpoint``), its folder's files (``files``), the
device it runs on (``device``) and the model rebuilt from a checkpoint (``load``)."""
