"""`python -m bench.stack`: see run.py."""

from bench.stack.run import main

main()
