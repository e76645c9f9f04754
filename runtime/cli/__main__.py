"""``python -m facestyle.cli``: the same as the ``facestyle`` console script."""

import sys

from . import main

sys.exit(main())
