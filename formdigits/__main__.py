"""`python -m formdigits ...`, the same as the `formdigits` command."""

import sys

from formdigits.cli import main

sys.exit(main())
