"""`python -m compressor` is the same as the `compressor` command."""

from compressor.cli.app import main

main()
