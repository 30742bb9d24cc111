"""schema.graphql is exported from the code: regenerate with `orders schema > schema.graphql`."""

from __future__ import annotations

from pathlib import Path

from strawberry.printer import print_schema

from api.schema import build_schema

SDL_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_schema_file_equals_the_schema_the_code_builds() -> None:
    assert SDL_FILE.read_text(encoding="utf-8") == print_schema(build_schema()) + "\n", (
        "schema.graphql drifted: run `orders schema > schema.graphql`"
    )


def test_the_contract_names_are_in_the_schema() -> None:
    sdl = print_schema(build_schema())
    for fragment in (
        "orderAt(",
        "orderEvents(",
        "events(",
        "placeOrder(",
        "union CommandResult = CommandAccepted | ValidationFailed | OrderNotFound | "
        "OrderAlreadyExists | InvalidTransition | ConcurrencyConflict",
        "interface CommandError",
        "scalar DateTime",
        "scalar Decimal",
        "scalar JSON",
    ):
        assert fragment in sdl
