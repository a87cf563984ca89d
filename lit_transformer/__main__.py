import sys

from lit_transformer.cli.main import main

sys.exit(main())
