import sys

from mdcache_server.cli import main

sys.exit(main())
