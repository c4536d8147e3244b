import sys

from oneadapt_jax.cli import main

sys.exit(main())
