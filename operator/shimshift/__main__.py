import sys

from shimshift.cli import main

sys.exit(main())
