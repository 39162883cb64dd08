"""What every command shares: the settings, `--json`, and errors an operator can act on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from tripmesh_tripctl.errors import OperatorError
from tripmesh_tripctl.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Ctx:
    settings: Settings


pass_ctx = click.make_pass_decorator(Ctx)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")(f)


class OperatorGroup(click.Group):
    """Turns an OperatorError anywhere below into `error: ...` / `hint: ...` and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OperatorError as exc:
            click.secho(f"error: {exc}", err=True, fg="red")
            if exc.hint:
                click.echo(f"hint: {exc.hint}", err=True)
            ctx.exit(exc.exit_code)


def needs(value: str | None, what: str, hint: str) -> str:
    if not value:
        raise OperatorError(f"{what} is not set", hint=hint, exit_code=2)
    return value
