import sys

from infra.released import main

sys.exit(main())
