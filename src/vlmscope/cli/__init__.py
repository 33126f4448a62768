"""The ``vlmscope`` command: one typer sub-app (or command) per module here.

Commands are thin typed functions over library calls; errors a user can fix
(``VlmscopeError``, pydantic ``ValidationError``) become one line on stderr and
exit status 1, with no traceback.
"""

from vlmscope.cli.app import app, main

__all__ = ["app", "main"]
