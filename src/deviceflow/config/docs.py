"""Generate docs/configuration.md from the settings models: ``python -m deviceflow.config.docs``."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic_settings import BaseSettings

from .server import ServerSettings, env_only


def render(model: type[BaseSettings], title: str) -> str:
    prefix = model.model_config.get("env_prefix", "")
    lines = [f"## {title}", "", "| setting | environment | default | description |",
             "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "—" if default in ("", None, ()) else f"`{default}`"
        flag = "—" if env_only(field) else "`--" + name.replace("_", "-") + "`"
        desc = (field.description or "").replace("|", "\\|")
        lines.append(f"| {flag} | `{prefix}{name.upper()}` | {shown} | {desc} |")
    return "\n".join(lines) + "\n"


def document() -> str:
    head = (
        "# Configuration reference\n\n"
        "Generated from `deviceflow.config` by `python -m deviceflow.config.docs`; do not edit.\n"
        "Every server setting is a `deviceflow serve` flag and an environment variable;\n"
        "the client reads its settings from the environment.\n\n"
    )
    from .client import document as client_document

    return head + render(ServerSettings, "Server (`deviceflow serve`)") + "\n" + client_document()


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/configuration.md")
    target.write_text(document(), encoding="utf-8")


if __name__ == "__main__":
    main()
