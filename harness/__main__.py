"""`python -m harness` is `g7chaos`."""
import sys

from harness.cli import main

sys.exit(main())
