"""Terminal output every command shares: one console per stream, and the build-log printers.

One console per stream matters: a live progress bar only redraws cleanly around lines printed
through its own console.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

# No emoji codes: `:b:` in an image name or a spec value must print as written, not as a symbol.
console = Console(highlight=False, soft_wrap=True, emoji=False)
errors = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def say(message: str) -> None:
    console.print(message, markup=False)  # plain text: file names like `[id].py` stay as they are


def progress_bar() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True)


def built(title: str, seconds: float) -> None:
    console.print(f"[green]✔ built[/] {escape(title)} in {seconds:.1f}s")


class StreamedBuildLog:
    """BuildProgress for `build`: each Dockerfile step as a line, the rest dimmed."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.title = ""

    def start(self, title: str) -> None:
        self.title = title
        console.rule(f"[bold]build {escape(title)}")

    def step(self, number: int, total: int, instruction: str) -> None:
        # Instructions carry spec values (a LABEL's description): text, never markup.
        console.print(f"[cyan]{escape(self.title)}[/] [bold]{number:>2}/{total}[/] "
                      f"{escape(instruction[:110])}")

    def line(self, text: str) -> None:
        if self.verbose or text.startswith((" ---> Using cache", "Successfully")):
            console.print(f"[dim]  {escape(text[:160])}[/]")

    def done(self, title: str, seconds: float) -> None:
        built(title, seconds)


class BarBuildLog:
    """BuildProgress for builds inside a longer job: each step becomes the bar's description."""

    def __init__(self, show: Callable[[str], None]) -> None:
        self.show = show
        self.title = ""

    def start(self, title: str) -> None:
        self.title = title

    def step(self, number: int, total: int, instruction: str) -> None:
        self.show(f"build {self.title} {number}/{total} {instruction}")

    def line(self, text: str) -> None:
        pass

    def done(self, title: str, seconds: float) -> None:
        built(title, seconds)
