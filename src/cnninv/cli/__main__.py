"""``python -m cnninv.cli …`` (and ``torchrun -m cnninv.cli …``): the ``cnninv`` command."""

import sys

from cnninv.cli import main

sys.exit(main())
