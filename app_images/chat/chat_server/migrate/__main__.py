import sys

from chat_server.migrate.cli import main

sys.exit(main())
