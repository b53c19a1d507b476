"""``python -m pipelines.cli ...``: the ``hero`` command without its installed script."""

import sys

from pipelines.cli.main import main

if __name__ == "__main__":  # not when a tool walks the package and imports every module
    sys.exit(main(prog_name="hero"))
