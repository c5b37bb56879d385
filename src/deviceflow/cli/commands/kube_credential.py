"""``deviceflow kube-credential``: a kubectl exec credential plugin.

client-go (kubectl) runs the command named in the kubeconfig's ``users[].user.exec`` and reads
one ``ExecCredential`` (group ``client.authentication.k8s.io``) from stdout: ``status.token`` is
sent as the bearer token and ``status.expirationTimestamp`` (RFC 3339) tells client-go when to
run the plugin again. It sets ``KUBERNETES_EXEC_INFO`` to an ExecCredential whose
``spec.interactive`` says whether the plugin may interact with the person. The token comes from
the cache or a silent refresh, as with get-token; only when a new sign-in is needed does the
device flow run, its instructions on stderr (which kubectl passes through), and never when
``spec.interactive`` is false: then the plugin fails at once with one sentence instead of
waiting for a code nobody sees. stdin belongs to kubectl and is never read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import click

from deviceflow.cli.common import (
    env_of,
    profile_option,
    resolve_profile,
    show_token_option,
    split_scopes,
    token_withheld,
)
from deviceflow.cli.context import Env
from deviceflow.cli.exit_codes import CliError, ExitCode
from deviceflow.cli.fastpath import format_expiry
from deviceflow.client.errors import SignInRequiredError
from deviceflow.client.tokens import decode_jwt_unverified

__all__ = [
    "API_VERSIONS",
    "ExecInfo",
    "KubeCredential",
    "command",
    "credential_json",
    "exec_info",
    "run",
]

GROUP = "client.authentication.k8s.io"
API_V1 = f"{GROUP}/v1"
# v1beta1 has the same fields; client-go rejects an answer in another version than it asked.
API_VERSIONS = (API_V1, f"{GROUP}/v1beta1")
EXEC_INFO = "KUBERNETES_EXEC_INFO"


@dataclass(frozen=True, slots=True)
class ExecInfo:
    """What kubectl told the plugin: the version to answer in and whether it may interact."""

    api_version: str = API_V1
    interactive: bool = True


@dataclass(frozen=True, slots=True)
class KubeCredential:
    api_version: str
    interactive: bool
    token: str = field(repr=False)
    expires_at: float | None


def _bad_exec_info(reason: str) -> CliError:
    return CliError(
        f"{EXEC_INFO} {reason}; kube-credential expects the ExecCredential that kubectl sets.",
        ExitCode.USAGE,
    )


def exec_info(environ: Mapping[str, str]) -> ExecInfo:
    """Read ``KUBERNETES_EXEC_INFO``. Unset (a person running the command by hand): answer in
    v1 and allow a sign-in. ``spec.interactive`` missing counts as false: never wait blind."""
    raw = environ.get(EXEC_INFO, "").strip()
    if not raw:
        return ExecInfo()
    try:
        data = json.loads(raw)
    except ValueError:
        raise _bad_exec_info("is not JSON") from None
    if not isinstance(data, dict) or data.get("kind") != "ExecCredential":
        raise _bad_exec_info("is not an ExecCredential")
    api_version = data.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise CliError(
            f"kubectl asks for an ExecCredential version kube-credential does not speak; set "
            f"apiVersion: {API_V1} in the kubeconfig's exec section.",
            ExitCode.USAGE,
        )
    spec = data.get("spec", {})
    if not isinstance(spec, dict):
        raise _bad_exec_info("has a spec that is not an object")
    interactive = spec.get("interactive", False)
    if not isinstance(interactive, bool):
        raise _bad_exec_info("has a spec.interactive that is not true or false")
    return ExecInfo(str(api_version), interactive)


def run(
    env: Env,
    profile_name: str | None,
    *,
    scopes: tuple[str, ...] = (),
    audience: str | None = None,
    show_qr: bool = True,
    id_token: bool = False,
) -> KubeCredential:
    from deviceflow.cli.commands.get_token import GetTokenOptions
    from deviceflow.cli.commands.get_token import run as get_token

    info = exec_info(env.environ)
    _profiles, profile = resolve_profile(env, profile_name)
    options = GetTokenOptions(
        profile=profile.name,
        scopes=scopes,
        audience=audience,
        show_qr=show_qr,
        sign_in=info.interactive,
        prompt=False,
    )
    try:
        result = get_token(env, options)
    except SignInRequiredError:
        env.failure_reported = False  # this sentence, more precise than the event's, is shown
        raise CliError(
            f"Profile '{profile.name}' needs a new sign-in and kubectl runs this plugin "
            f"non-interactively; run 'deviceflow get-token --profile {profile.name}' in a "
            "terminal, then try again.",
            ExitCode.NOT_SIGNED_IN,
        ) from None
    if not id_token:
        return KubeCredential(
            info.api_version, info.interactive, result.access_token, result.expires_at
        )
    # Kubernetes' OpenID Connect authenticator takes the ID token as the bearer token and checks
    # its own exp, so client-go must come back before whichever of the two expires first.
    if not result.id_token:
        raise CliError(
            f"Profile '{profile.name}' got no ID token from its provider: add the openid scope "
            "(deviceflow update-profile --scope openid …), sign in again, then try again.",
            ExitCode.USAGE,
        )
    try:
        id_expiry = decode_jwt_unverified(result.id_token).expires_at()
    except ValueError as exc:
        raise CliError(f"The ID token of profile '{profile.name}' can't be read: {exc}.",
                       ExitCode.SERVER) from None
    ends = [t for t in (result.expires_at, id_expiry) if t is not None]
    return KubeCredential(
        info.api_version, info.interactive, result.id_token, min(ends) if ends else None
    )


def credential_json(credential: KubeCredential) -> str:
    """The ExecCredential on stdout. Without an expiry client-go keeps the token until a 401."""
    status: dict[str, str] = {"token": credential.token}
    expiry = format_expiry(credential.expires_at)
    if expiry is not None:
        status["expirationTimestamp"] = expiry
    body = {
        "apiVersion": credential.api_version,
        "kind": "ExecCredential",
        "spec": {"interactive": credential.interactive},
        "status": status,
    }
    return json.dumps(body) + "\n"


@click.command(
    "kube-credential",
    epilog="""\b
Examples (kubectl runs it; see docs/cli.md, "kubectl", for the kubeconfig):
  deviceflow kube-credential --profile k8s
  KUBERNETES_EXEC_INFO='{"apiVersion":"client.authentication.k8s.io/v1",
    "kind":"ExecCredential","spec":{"interactive":false}}' deviceflow kube-credential -p k8s

Exit 10 when a sign-in is needed but kubectl said the session is not interactive.""",
)
@profile_option
@click.option(
    "--scope",
    "-s",
    "scopes",
    multiple=True,
    metavar="SCOPE",
    help="Scope to request; repeat for several (default: the profile's scopes).",
)
@click.option("--audience", metavar="AUDIENCE", help="API audience to request (Auth0).")
@click.option("--no-qr", is_flag=True, help="Don't draw the QR code.")
@show_token_option
@click.option("--id-token", "id_token", is_flag=True,
              help="Send the ID token instead of the access token (clusters whose API server "
              "authenticates with OpenID Connect: --oidc-issuer-url).")
@click.pass_context
def command(
    ctx: click.Context,
    profile_name: str | None,
    scopes: tuple[str, ...],
    audience: str | None,
    no_qr: bool,
    show_token: bool,
    id_token: bool,
) -> int:
    """Print an ExecCredential for kubectl (stdout); sign in on stderr when allowed."""
    env = env_of(ctx)
    credential = run(
        env, profile_name, scopes=split_scopes(scopes), audience=audience, show_qr=not no_qr,
        id_token=id_token,
    )
    if not token_withheld(env, show_token):
        env.out(credential_json(credential))
    return int(ExitCode.OK)
