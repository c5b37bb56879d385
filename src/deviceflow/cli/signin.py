"""Showing the sign-in to the person: the flow emits events, these views render them on stderr.

- ``RichView`` (a terminal): the box with the URL, the code and the steps, a QR code of
  ``verification_uri_complete`` (or ``verification_uri``), a spinner with the time left counted
  from the server's ``expires_in``, "Press Ctrl+C to cancel", and a warning naming this host.
  rich and segno are imported only here, only when a code is shown.
- ``PlainView`` (CI logs, ``docker logs``, pipes): the same facts as plain lines, no animation and
  no control codes.
- ``open_sign_in`` picks the views for a run: the box on stderr when it is a terminal; when it is
  not, the box on the controlling terminal (/dev/tty) and the JSON events (events.py) on stderr;
  with no terminal at all, the plain lines on stderr. ``--output events``/``--events-fd`` add the
  events on stderr or a descriptor.

Server text reaching the screen has already had control characters stripped (tokens.py).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

from deviceflow.cli.context import Env, isatty
from deviceflow.cli.events import EventsView, open_events_fd
from deviceflow.cli.terminal import controlling_terminal, terminal_size
from deviceflow.client.flow import Event, ShowCode, Sleep, SleepReason
from deviceflow.client.tokens import DeviceCode

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.live import Live

__all__ = [
    "PlainView",
    "RichView",
    "SignIn",
    "SignInView",
    "make_view",
    "open_sign_in",
    "qr_lines",
    "words_for",
]

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
TITLE = "Device Code Authentication"


class SignInView(Protocol):
    @property
    def shown(self) -> bool: ...

    def on_event(self, event: Event) -> None: ...

    def notice(self, text: str) -> None: ...

    def close(self) -> None: ...

    def succeeded(self, profile: str) -> None: ...

    def failed(self, exit_code: int, reason: str) -> None: ...


def words_for(seconds: float) -> str:
    """'15 minutes', '1 minute', '45 seconds' (rounded the way a person would say it)."""
    seconds = max(0, round(seconds))
    if seconds >= 120:
        minutes = round(seconds / 60)
        return f"{minutes} minutes"
    if seconds >= 60:
        return "1 minute" if seconds < 90 else "2 minutes"
    return "1 second" if seconds == 1 else f"{seconds} seconds"


def clock_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def qr_lines(data: str, *, border: int = 2) -> list[str]:
    """A QR code as text, two modules per character cell (upper/lower half blocks).

    Dark modules are drawn as the *foreground* so the caller must paint black on white: a
    scanner needs dark modules on a light background whatever the terminal's theme.
    """
    import segno

    qr = segno.make(data, error="l", micro=False)
    size = len(qr.matrix)
    width = size + 2 * border

    def dark(row: int, col: int) -> bool:
        r, c = row - border, col - border
        return 0 <= r < size and 0 <= c < size and bool(qr.matrix[r][c])

    lines = []
    for row in range(0, width, 2):
        chars = []
        for col in range(width):
            top, bottom = dark(row, col), dark(row + 1, col)
            chars.append("█" if top and bottom else "▀" if top else "▄" if bottom else " ")
        lines.append("".join(chars))
    return lines


class PlainView:
    """Plain lines for logs: no colours, no cursor movement, no animation."""

    def __init__(self, env: Env, *, echo_failure: bool = False) -> None:
        self.env = env
        self.echo_failure = echo_failure  # on /dev/tty: main's sentence goes to stderr only
        self.shown = False

    def on_event(self, event: Event) -> None:
        if isinstance(event, ShowCode):
            self.shown = True
            for line in plain_instructions(event.device_code, self.env.hostname):
                self.env.say(line)
        elif isinstance(event, Sleep) and event.reason in (
            SleepReason.BACKOFF,
            SleepReason.SLOW_DOWN,
        ):
            self.env.say(retry_sentence(event))

    def notice(self, text: str) -> None:
        self.env.say(text)

    def close(self) -> None:
        return None

    def succeeded(self, profile: str) -> None:
        if self.shown:
            self.env.say("Authentication successful.")
            self.env.say(f"Token saved to profile '{profile}'.")

    def failed(self, exit_code: int, reason: str) -> None:
        if self.echo_failure:
            self.env.say(reason)


def plain_instructions(code: DeviceCode, hostname: str) -> Iterable[str]:
    yield "To sign in, use a web browser to open the page:"
    yield f"    {code.verification_uri}"
    yield f"And enter the code: {code.user_code}"
    if code.verification_uri_complete:
        yield f"(Or open {code.verification_uri_complete} which has the code filled in.)"
    if code.message:
        yield f"Message from the server: {code.message}"
    yield f"The code expires in {words_for(code.expires_in)}."
    yield f"Only enter this code if you started this sign-in on {hostname}."
    yield "Waiting for authentication..."


def retry_sentence(event: Sleep) -> str:
    if event.reason is SleepReason.SLOW_DOWN:
        return event.detail or "The server asked to poll more slowly."
    detail = event.detail.rstrip(".") if event.detail else "A temporary problem"
    count = ""
    if event.retry and event.retries:
        count = f" (retry {event.retry} of {event.retries})"
    elif event.retry:
        count = f" (retry {event.retry})"
    return f"{detail}; trying again {_wait_words(event.seconds)}{count}."


def _wait_words(seconds: float) -> str:
    """The real wait: 'now', 'in 0.5 seconds', 'in 20 seconds' (never 'in 0 seconds')."""
    if seconds < 0.05:
        return "now"
    if seconds < 10 and round(seconds) != round(seconds, 1):
        return f"in {seconds:.1f} seconds"
    return f"in {words_for(seconds)}"


class _Box:
    """The live box: re-rendered by rich several times a second (spinner, countdown)."""

    def __init__(
        self,
        code: DeviceCode,
        hostname: str,
        qr: list[str] | None,
        monotonic: Callable[[], float],
    ) -> None:
        self.code = code
        self.hostname = hostname
        self.qr = qr
        self.monotonic = monotonic
        self.note: str | None = None
        self.qr_note: str | None = None  # the terminal was too small for the QR code

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich import box
        from rich.console import Group
        from rich.panel import Panel
        from rich.rule import Rule
        from rich.text import Text

        code = self.code
        parts: list[object] = [
            Text.assemble("1. Visit: ", (code.verification_uri, "bold cyan underline")),
            Text.assemble("2. Enter code: ", (code.user_code, "bold yellow")),
            Text("3. Sign in with your credentials"),
        ]
        if code.message:
            parts.append(Text(f"Message from the server: {code.message}", style="dim"))
        if self.qr:
            caption = (
                "Or scan this to open the page with the code filled in:"
                if code.verification_uri_complete
                else "Or scan this to open the page:"
            )
            parts.append(Text(""))
            parts.append(Text(caption))
            parts.append(Text("\n".join(self.qr), style="black on white", no_wrap=True))
        elif self.qr_note:
            parts.append(Text(""))
            parts.append(Text(self.qr_note, style="bold"))
        parts.append(Text(""))
        parts.append(
            Text(
                f"Only enter this code if you started this sign-in on {self.hostname}.",
                style="bold",
            )
        )
        parts.append(Rule(style="dim"))
        left = code.expires_at - self.monotonic()
        frame = SPINNER[int(time.monotonic() * 10) % len(SPINNER)]
        if left > 0:
            waiting = f"{frame} Waiting for authentication... (expires in {clock_text(left)})"
        else:
            waiting = "Device code expired."
        parts.append(Text(waiting))
        if self.note:
            parts.append(Text(self.note, style="yellow"))
        parts.append(Text("Press Ctrl+C to cancel", style="dim"))
        yield Panel(
            Group(*parts),  # type: ignore[arg-type]
            title=TITLE,
            box=box.ROUNDED,
            expand=False,
            padding=(0, 1),
        )


class RichView:
    """The terminal box with QR code and countdown, on stderr."""

    def __init__(
        self,
        env: Env,
        *,
        show_qr: bool,
        monotonic: Callable[[], float] = time.monotonic,
        echo_failure: bool = False,
    ) -> None:
        self.env = env
        self.show_qr = show_qr
        self.echo_failure = echo_failure
        self.monotonic = monotonic
        self.shown = False
        self._console: Console | None = None
        self._live: Live | None = None
        self._box: _Box | None = None

    def _get_console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            # rich measures fds 0-2; on /dev/tty those may be pipes, so measure the stream itself.
            size = terminal_size(self.env)
            self._console = Console(
                file=self.env.stderr,
                highlight=False,
                width=size[0] if size else None,
                height=size[1] if size else None,
            )
        return self._console

    def on_event(self, event: Event) -> None:
        if isinstance(event, ShowCode):
            self.shown = True
            self._start(event.device_code)
        elif isinstance(event, Sleep) and self._box is not None:
            if event.reason in (SleepReason.BACKOFF, SleepReason.SLOW_DOWN):
                self._box.note = retry_sentence(event)
            elif event.reason is SleepReason.POLL:
                self._box.note = None

    def _start(self, code: DeviceCode) -> None:
        from rich.live import Live

        console = self._get_console()
        qr = qr_lines(code.qr_target) if self.show_qr else None
        qr_note = None
        if qr is not None:
            width, height = console.size
            # The box is ~12 lines plus the QR; a QR cut by a small terminal is unscannable.
            if len(qr) + 13 > height or len(qr[0]) + 4 > width:
                qr = None
                qr_note = small_terminal_sentence(code)
        self._box = _Box(code, self.env.hostname, qr, self.monotonic)
        self._box.qr_note = qr_note
        self._live = Live(
            self._box,
            console=console,
            refresh_per_second=8,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def notice(self, text: str) -> None:
        self._get_console().print(text, markup=False)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
            if self._box is not None and self._box.qr_note:
                # The box is transient: keep the one line that said why there was no QR code.
                self._get_console().print(self._box.qr_note, markup=False)

    def succeeded(self, profile: str) -> None:
        if self.shown:
            console = self._get_console()
            console.print("[bold green]✓[/] Authentication successful!")
            console.print(f"Token saved to profile '{profile}'", markup=False)

    def failed(self, exit_code: int, reason: str) -> None:
        if self.echo_failure:
            self._get_console().print(reason, markup=False)


def small_terminal_sentence(code: DeviceCode) -> str:
    target = code.verification_uri_complete or code.verification_uri
    return f"This terminal is too small for the QR code; open {target} instead."


def make_view(env: Env, *, show_qr: bool, echo_failure: bool = False) -> SignInView:
    """The person's view on ``env.stderr``: the box on a terminal, plain lines otherwise."""
    if env.stderr_is_terminal:
        return RichView(env, show_qr=show_qr, echo_failure=echo_failure)
    return PlainView(env, echo_failure=echo_failure)


class SignIn:
    """All the views of one run, fed the same events (see ``open_sign_in``)."""

    def __init__(self, views: list[SignInView], *, events_on_stderr: bool) -> None:
        self.views = views
        # stderr carries JSON lines: nothing else may be written there (notices become events,
        # and the final error is in the ``failed`` event).
        self.events_on_stderr = events_on_stderr

    @property
    def shown(self) -> bool:
        return any(view.shown for view in self.views)

    def on_event(self, event: Event) -> None:
        for view in self.views:
            view.on_event(event)

    def notice(self, text: str) -> None:
        for view in self.views:
            view.notice(text)

    def close(self) -> None:
        for view in self.views:
            view.close()

    def succeeded(self, profile: str) -> None:
        for view in self.views:
            view.succeeded(profile)

    def failed(self, exit_code: int, reason: str) -> None:
        for view in self.views:
            view.failed(exit_code, reason)


@contextlib.contextmanager
def open_sign_in(
    env: Env, *, show_qr: bool, events: bool = False, events_fd: int | None = None
) -> Iterator[SignIn]:
    """The views for a sign-in, by where the person and the programs are:

    - stderr is a terminal: the box there (with ``events``: the JSON lines there instead);
    - stderr is not, but the process has a controlling terminal (``env.use_tty``): the box on
      /dev/tty, and the JSON lines on stderr for whoever reads it;
    - no terminal at all: the plain lines on stderr (with ``events``: the JSON lines instead).

    ``events_fd`` adds the JSON lines on that descriptor, whatever else happens.
    """
    with contextlib.ExitStack() as stack:
        extra = stack.enter_context(open_events_fd(events_fd)) if events_fd is not None else None
        views: list[SignInView] = []
        tty: Env | None = None
        if env.use_tty and not isatty(env.stderr):
            tty = stack.enter_context(controlling_terminal(env))
        events_on_stderr = events or tty is not None
        if tty is not None:
            views.append(make_view(tty, show_qr=show_qr, echo_failure=True))
        elif not events_on_stderr:
            views.append(make_view(env, show_qr=show_qr))
        if events_on_stderr:
            views.append(EventsView(env.stderr))
        if extra is not None and not (events_on_stderr and events_fd == 2):
            views.append(EventsView(extra))
        yield SignIn(views, events_on_stderr=events_on_stderr)
