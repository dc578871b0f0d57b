import sys

from bootres.cli import main

sys.exit(main())
