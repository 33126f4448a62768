"""State one report build threads through its parts: config, pictures, problems.

Not global: ``build_report`` makes one ``Context`` and passes it down. Parts
register each PNG here (it is written beside the page and embedded in it),
record every input file they read (for the page's provenance fingerprint) and
record problems (an unreadable file) which the page shows in place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from vlmscope.report.config import ReportConfig
from vlmscope.report.html import esc, figure, slug
from vlmscope.report.readers import ReportInputError

__all__ = ["Context"]

_T = TypeVar("_T")


@dataclass
class Context:
    cfg: ReportConfig
    root: Path
    """The artifacts root; input paths are recorded relative to it."""
    images: dict[str, bytes] = field(default_factory=dict)
    """PNG file name (beside ``index.html``) -> bytes, in insertion order."""
    inputs: set[Path] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    loaded: dict[tuple[str, Path], Any] = field(default_factory=dict)
    """Parsed inputs by (kind, path), so two parts reading one file parse (and report it) once."""

    def used(self, path: Path) -> Path:
        """Record that ``path`` fed the page (its bytes enter the provenance fingerprint)."""
        self.inputs.add(Path(path))
        return path

    def problem(self, message: str) -> str:
        """Record an unusable input; returns the HTML shown in its place."""
        self.problems.append(message)
        return f'<p class="not-run">Could not show this part: {esc(message)}</p>'

    def attempt(self, html: list[str], read: Callable[..., _T], *args: Any, **kwargs: Any) -> _T | None:
        """``read(*args, **kwargs)``, or None once its ``ReportInputError`` is shown in ``html``.

        Every part skips an unusable input the same way: the problem is
        recorded and shown in place, and the part goes on with the next run.
        """
        try:
            return read(*args, **kwargs)
        except ReportInputError as e:
            html.append(self.problem(str(e)))
            return None

    def picture(self, png: bytes, *parts: str, alt: str, caption: str | None = None) -> str:
        """Store ``png`` as ``<slug(parts)>.png`` (unique) and return its embedded ``<figure>``."""
        base = slug(*parts)
        name = f"{base}.png"
        i = 2
        while name in self.images:
            name = f"{base}-{i}.png"
            i += 1
        self.images[name] = png
        return figure(png, alt=alt, caption=caption, href=name)

    def fingerprint(self) -> str:
        """SHA-256 over (relative path, bytes) of every input file read, in sorted order."""
        h = hashlib.sha256()
        for p in sorted(self.inputs, key=lambda q: self._rel(q)):
            h.update(self._rel(p).encode())
            h.update(b"\0")
            try:
                h.update(p.read_bytes())
            except OSError:
                h.update(b"<unreadable>")
            h.update(b"\0")
        return h.hexdigest()

    def _rel(self, p: Path) -> str:
        try:
            return p.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return p.as_posix()
