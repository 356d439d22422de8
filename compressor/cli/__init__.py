"""`compressor` command line: thin Typer commands that parse flags into the recipe and call
one function of the layers below. User errors become one red line and exit code 2."""

from compressor.cli import files, measure, predict, recipes, search, train
from compressor.cli.app import app, main

__all__ = ["app", "files", "main", "measure", "predict", "recipes", "search", "train"]
