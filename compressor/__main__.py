"""`python -m compressor` is the same as the `compressor` command."""

from compressor.cli import main

main()
