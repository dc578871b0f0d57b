import sys

from bootres.shell.cli import main

sys.exit(main())
