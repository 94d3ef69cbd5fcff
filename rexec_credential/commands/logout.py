"""Remove the stored Rexec login.

Deletes the configuration file (~/.rexec/config.json, or $REXEC_CONFIG_DIR/config.json)
completely, whether or not anyone was logged in and even when it is corrupted.

Usage:
  rexec-logout
  rexec-logout (-h | --help)
  rexec-logout --version

Options:
  -h, --help  Show this help.
  --version   Show the version.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..context import Context


def run(args: dict, ctx: Context) -> int:
    """Delete the config file and say so."""
    ctx.config.remove()
    ctx.success("Logged out")
    if ctx.env.get("REXEC_TOKEN"):
        ctx.warn("note: REXEC_TOKEN is still set in this environment; unset it to log out fully")
    return 0
