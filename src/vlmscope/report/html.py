"""HTML primitives for one self-contained page: escaping, tables, figures, the shell.

Everything returns a string; nothing here reads files. The page carries its
CSS inline and its pictures as ``data:`` URIs, and its Content-Security-Policy
forbids every other source, so a browser opening the file never touches the
network and a missing resource shows up as a console error in the tests.
"""

from __future__ import annotations

import base64
import html
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Cell",
    "esc",
    "fmt",
    "slug",
    "table",
    "figure",
    "not_run",
    "note",
    "png_size",
    "page",
    "TocEntry",
]

Cell = str | int | float | None

_CSS = """
:root { color-scheme: light; }
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif;
       margin: 0 auto; max-width: 1180px; padding: 1.5rem 2rem 4rem; color: #1d2330;
       background: #fff; line-height: 1.45; font-size: 15px; }
h1 { font-size: 1.8rem; margin: 0 0 .3rem; }
h2 { font-size: 1.4rem; margin: 2.6rem 0 .6rem; padding-bottom: .25rem; border-bottom: 2px solid #d5dae3; }
h3 { font-size: 1.12rem; margin: 1.6rem 0 .5rem; color: #2d3a55; }
h4 { font-size: 1rem; margin: 1.1rem 0 .4rem; color: #3d4a63; }
p.lead { color: #4a5568; margin-top: 0; }
p.gen { color: #6b7280; font-size: .85rem; }
p.not-run { color: #8a5a00; background: #fff7e6; border-left: 4px solid #f0b429;
            padding: .35rem .7rem; margin: .4rem 0; }
p.note { color: #4a5568; font-size: .9rem; margin: .3rem 0; }
nav.toc { background: #f4f6fa; border: 1px solid #dde2ea; border-radius: 6px; padding: .6rem 1rem; }
nav.toc ul { margin: .2rem 0; padding-left: 1.2rem; }
nav.toc li.missing a { color: #8a8f99; }
table { border-collapse: collapse; margin: .4rem 0 1rem; font-size: .88rem; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: .2rem 0; color: #2d3a55; }
th, td { border: 1px solid #d5dae3; padding: .22rem .55rem; vertical-align: top; }
th { background: #eef1f6; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.tokens { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .8rem; }
tr:nth-child(even) td { background: #fafbfd; }
figure { margin: .6rem 0 1.2rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #e2e6ee; }
figcaption { font-size: .85rem; color: #4a5568; }
code { background: #f1f3f7; padding: 0 .25rem; border-radius: 3px; }
"""


def esc(text: object) -> str:
    """HTML-escape ``str(text)`` (quotes included, for attributes)."""
    return html.escape(str(text), quote=True)


def fmt(value: Cell, digits: int = 3) -> str:
    """A number as the tables show it: ints plain, floats to ``digits``, missing as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if value != 0 and abs(value) >= 10**4:
            return f"{value:.4g}"
        if float(value).is_integer() and abs(value) >= 10:
            return str(int(value))
        return f"{value:.{digits}f}"
    return str(value)


def slug(*parts: str) -> str:
    """A file- and anchor-safe name from ``parts`` (``llava-hf/x`` -> ``llava-hf--x``)."""
    out = []
    for part in parts:
        s = part.replace("/", "--")
        s = "".join(c if c.isalnum() or c in "-_." else "_" for c in s)
        out.append(s.strip("._") or "_")
    return "-".join(out)


def _cell(value: Cell, cls: str | None) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    classes = [c for c in (cls, "num" if numeric else None) if c]
    attr = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{attr}>{esc(fmt(value))}</td>"


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    caption: str | None = None,
    cell_class: Sequence[str | None] | None = None,
    max_rows: int | None = None,
) -> str:
    """A plain table; numbers right-aligned; rows past ``max_rows`` are counted, not shown."""
    shown = rows if max_rows is None else rows[:max_rows]
    classes = list(cell_class) if cell_class is not None else [None] * len(header)
    parts = ["<table>"]
    if caption:
        parts.append(f"<caption>{esc(caption)}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead>")
    parts.append("<tbody>")
    for row in shown:
        parts.append("<tr>" + "".join(_cell(v, c) for v, c in zip(row, classes, strict=True)) + "</tr>")
    parts.append("</tbody></table>")
    if len(rows) > len(shown):
        parts.append(note(f"{len(rows) - len(shown)} more row(s) not shown."))
    return "".join(parts)


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, so the page reserves the space up front."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG (bad signature or missing IHDR chunk)")
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def figure(png: bytes, *, alt: str, caption: str | None = None, href: str | None = None) -> str:
    """An embedded PNG (``data:`` URI) with its caption; ``href`` names the copy beside the page."""
    w, h = png_size(png)
    data = base64.b64encode(png).decode("ascii")
    img = f'<img src="data:image/png;base64,{data}" width="{w}" height="{h}" alt="{esc(alt)}">'
    parts = [esc(caption)] if caption else []
    if href:
        parts.append(f"<code>{esc(href)}</code>")
    figcap = f"<figcaption>{' '.join(parts)}</figcaption>" if parts else ""
    return f"<figure>{img}{figcap}</figure>"


def not_run(what: str) -> str:
    """The marker a missing part gets: the page says so instead of breaking."""
    return f'<p class="not-run">Not run: {esc(what)}</p>'


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


@dataclass(frozen=True)
class TocEntry:
    anchor: str
    title: str
    has_content: bool


def page(title: str, body: str, *, toc: Sequence[TocEntry] = (), generation_note: str = "") -> str:
    """The complete document: CSP forbidding every non-inline, non-``data:`` source."""
    toc_html = ""
    if toc:
        items = "".join(
            (
                f'<li><a href="#{esc(t.anchor)}">{esc(t.title)}</a></li>'
                if t.has_content
                else f'<li class="missing"><a href="#{esc(t.anchor)}">{esc(t.title)}</a> (not run)</li>'
            )
            for t in toc
        )
        toc_html = f'<nav class="toc"><strong>Studies</strong><ul>{items}</ul></nav>'
    gen = f'<p class="gen">{esc(generation_note)}</p>' if generation_note else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">\n"
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{esc(title)}</h1>\n{gen}\n{toc_html}\n{body}\n</body>\n</html>\n"
    )
