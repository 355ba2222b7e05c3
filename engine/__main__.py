"""``python -m engine`` is ``lxsd``."""
import sys

from engine.cli import main

sys.exit(main())
