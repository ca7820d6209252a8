"""`python -m stratos` -> the Hydra CLI."""

from stratos.cli import main

main()
