"""Training: config, the loop, checkpoints, DDP helpers, reports and the compare driver."""
