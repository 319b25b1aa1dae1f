"""``python -m clearml_assets.local_server``: the same as ``clearml-assets local-server``."""

import sys

from ..cli import main

if __name__ == "__main__":
    sys.exit(main(["local-server", *sys.argv[1:]]))
