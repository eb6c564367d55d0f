"""``python -m ssd_keras``: see `ssd_keras.cli`."""

import sys

from ssd_keras.cli import main

if __name__ == "__main__":
    sys.exit(main())
