"""``python -m freqalign`` (and ``torchrun -m freqalign train ...``) run the CLI."""
import sys

from .cli import main

sys.exit(main())
