"""Dependencies of the console's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from services.console.console import Console


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


ConsoleDep = Annotated[Console, Depends(_console)]
# Passed on unchanged to the service that checks it; never stored, never put in a page.
Authorization = Annotated[str | None, Header(include_in_schema=False)]
