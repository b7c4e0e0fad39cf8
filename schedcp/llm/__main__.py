"""``python -m schedcp.llm`` is ``python -m schedcp.llm.server``."""

import sys

from schedcp.llm.server import main

sys.exit(main())
