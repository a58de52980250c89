"""`python -m wfrun`."""

from wfrun.cli import main

main()
