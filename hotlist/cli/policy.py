"""``hotlist policy show``: the SB 34 usage and privacy policy, as ``hotlist serve`` serves it."""

from __future__ import annotations

import typer

from hotlist.cli.common import ConfigOption, ExitCode, fail, settings_from, warn

app = typer.Typer(no_args_is_help=True, help="The SB 34 usage and privacy policy.")


@app.command("show")
def policy_show(config: ConfigOption = None) -> None:
    """Print the policy: the operator's own file if configured, else the one built from
    this configuration; name on standard error each part the configuration leaves out."""
    from hotlist import policy

    settings = settings_from(config)
    own = settings.access.privacy_policy
    if own is not None:
        try:
            print(own.read_text(encoding="utf-8"), end="")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"[access] privacy_policy: cannot read {own}: {exc}", ExitCode.USAGE)
        return
    print(policy.render_policy(settings), end="")
    for part in policy.missing_parts(settings):
        warn(f"the usage and privacy policy does not state {part}")
