"""get-token's other two flows on the terminal side: which flow runs, where the client secret
comes from, and what the person sees while the browser sign-in runs (stderr only).

- ``pick_flow``: ``--flow``, else the profile's ``default_flow``, else ``choose_flow`` for this
  machine (client/flow_choice.py), announced in one line when a sign-in starts.
- ``client_secret``: ``--client-secret-stdin``, else ``DEVICEFLOW_CLIENT_SECRET``, else the one
  stored with the profile (the token store: keyring or 0600 file); never from argv.
- ``FlowView``: wraps the device-code view; shows the authorization URL (the browser may not
  open) and the one-line announcement.
"""

from __future__ import annotations

from dataclasses import dataclass

from deviceflow.cli.context import Env
from deviceflow.cli.exit_codes import CliError, ExitCode
from deviceflow.cli.profile_options import read_secret
from deviceflow.cli.signin import SignInView, words_for
from deviceflow.client.browser_flow import AwaitRedirect
from deviceflow.client.cache import TokenCache
from deviceflow.client.flow import Event, ShowCode
from deviceflow.client.flow_choice import FlowChoice, announce, choose_flow, machine_facts
from deviceflow.client.profiles import FlowKind, Profile
from deviceflow.client.providers import provider_for

__all__ = ["FlowView", "client_secret", "pick_flow"]

FLOW_CHOICES = [kind.value for kind in FlowKind]


def pick_flow(env: Env, flow: str | None, profile: Profile) -> FlowChoice:
    return choose_flow(
        FlowKind(flow) if flow else None, profile.default_flow, machine_facts(env.environ)
    )


def client_secret(
    env: Env, profile: Profile, cache: TokenCache, flow: FlowKind, *, from_stdin: bool
) -> str | None:
    """The client secret for this run, or None for a public client. Refuses (exit 3) before any
    request when the flow or the provider needs a secret that is not there."""
    if from_stdin:
        secret: str | None = read_secret(env)
    elif env.settings.client_secret:
        secret = env.settings.client_secret
    elif profile.has_client_secret:
        secret = cache.load_secret(profile.name)
        if secret is None:
            raise CliError(
                f"Profile '{profile.name}' needs its client secret, which is missing from the "
                f"token store; set it again with 'deviceflow update-profile --name "
                f"{profile.name} --client-secret-stdin'.",
                ExitCode.CONFIG,
            )
    else:
        secret = None
    if secret is not None:
        return secret
    how = (
        f"store it with 'deviceflow update-profile --name {profile.name} --client-secret-stdin', "
        "or pass it in DEVICEFLOW_CLIENT_SECRET or on stdin with --client-secret-stdin"
    )
    if flow is FlowKind.CLIENT_CREDENTIALS:
        raise CliError(
            f"The client-credentials flow needs the client secret of profile '{profile.name}': "
            f"{how}.",
            ExitCode.CONFIG,
        )
    provider = provider_for(profile.provider)
    if flow is FlowKind.INTERACTIVE_BROWSER and provider.quirks.code_flow_needs_secret:
        raise CliError(
            f"{provider.title} needs the client secret of its app for a browser sign-in "
            f"(it is not treated as a secret there): {how}.",
            ExitCode.CONFIG,
        )
    return None


@dataclass
class FlowView:
    """The device-code view plus the browser sign-in's lines and the automatic choice."""

    env: Env
    inner: SignInView
    choice: FlowChoice
    shown: bool = False
    _announced: bool = False

    def on_event(self, event: Event | AwaitRedirect) -> None:
        # Through the sign-in view's notices: they go where the person sees the sign-in
        # (/dev/tty when stderr is captured) and become events under --output events.
        say = self.inner.notice
        if isinstance(event, ShowCode | AwaitRedirect) and not self._announced:
            self._announced = True
            if self.choice.automatic:
                say(announce(self.choice))  # first: which flow, then its instructions
        if isinstance(event, AwaitRedirect):
            self.shown = True
            say("Opening your browser to sign in. If it does not open, visit:")
            say(f"    {event.authorization.url}")
            say(f"Waiting up to {words_for(event.timeout)} for the sign-in in the browser "
                "(Ctrl+C to cancel)...")
            return
        self.inner.on_event(event)

    def close(self) -> None:
        self.inner.close()

    def succeeded(self, profile: str) -> None:
        if self.shown:
            self.inner.notice("Authentication successful.")
            self.inner.notice(f"Token saved to profile '{profile}'.")
        self.inner.succeeded(profile)
