"""`python -m pixel_keras.cli`: the `pixel-keras` command line."""

import sys

from pixel_keras.cli import main

if __name__ == "__main__":
    sys.exit(main())
