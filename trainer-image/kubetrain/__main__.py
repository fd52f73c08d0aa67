import sys

from kubetrain.cli.main import main

sys.exit(main())
