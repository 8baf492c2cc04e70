"""``python -m leanfit.cli``: the same as the ``leanfit`` command."""
from . import main

main()
