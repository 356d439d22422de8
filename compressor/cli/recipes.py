"""`compressor recipe show`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from compressor.cli.app import recipe_app
from compressor.recipe import load_recipe


@recipe_app.command("show")
def recipe_show(
    recipe: Annotated[
        Path | None, typer.Argument(help="YAML recipe to merge over defaults.")
    ] = None,
) -> None:
    """Print the effective recipe (defaults merged with the file)."""
    typer.echo(load_recipe(recipe).to_yaml(), nl=False)
