import sys

from shimshift.entry.cli import main

sys.exit(main())
