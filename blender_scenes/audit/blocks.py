"""The pieces a report's text is made of (heading, paragraph, bullet list, table, picture) and their two
writers, Markdown and HTML: report.md and report.html come from one list of blocks. Imports nothing of ours."""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass

STYLE = """body{font-family:system-ui,sans-serif;max-width:1180px;margin:1.5em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;
text-align:left}th{background:#f2f2f2}td.n{text-align:right;white-space:nowrap}
img{max-width:100%;border:1px solid #ddd}figure{margin:1em 0}.FAIL{color:#b00;font-weight:bold}
.ok{color:#070}li{font-size:13px}"""


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    lines: list[str]


@dataclass(frozen=True)
class Table:
    head: list
    rows: list[list]


@dataclass(frozen=True)
class Picture:
    name: str       # figures/{name}.png beside report.md
    caption: str
    png: bytes      # inlined in report.html


Block = Heading | Paragraph | Bullets | Table | Picture


def to_markdown(blocks: list[Block]) -> str:
    return "\n".join(_texts(b)[0] for b in blocks)


def to_html(blocks: list[Block], title: str) -> str:
    """A self-contained page: style inline, pictures as base64 data URIs."""
    head = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>")
    return "\n".join([head, *(_texts(b)[1] for b in blocks), "</body></html>"])


def _texts(block: Block) -> tuple[str, str]:
    """(Markdown, HTML) of one block, side by side so that the two files always say the same."""
    e = html.escape
    match block:
        case Heading(level, text):
            return f"{'#' * level} {text}\n", f"<h{level}>{e(text)}</h{level}>"
        case Paragraph(text):
            return f"{text}\n", f"<p>{e(text)}</p>"
        case Bullets(lines):
            return ("\n".join(f"- {line}" for line in lines) + "\n",
                    "<ul>" + "".join(f"<li>{e(x)}</li>" for x in lines) + "</ul>")
        case Table(head, rows):
            return table_markdown(head, rows), _table_html(head, rows)
        case Picture(name, caption, png):
            data = base64.b64encode(png).decode("ascii")
            figure = (f"<figure><img alt='{e(name)}' src='data:image/png;base64,{data}'>"
                      f"<figcaption>{e(caption)}</figcaption></figure>")
            return f"![{caption}](figures/{name}.png)\n\n*{caption}*\n", figure
    raise TypeError(f"not a report block: {block!r}")


def table_markdown(head: list, rows: list[list]) -> str:
    """A Markdown table (cells with "|" escaped), ending with a newline."""
    def cell(v) -> str:
        return str(v).replace("|", "\\|")
    return "\n".join(["| " + " | ".join(cell(h) for h in head) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]) + "\n"


def _table_html(head: list, rows: list[list]) -> str:
    e = html.escape
    cells = "".join(f"<th>{e(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td class='{_cls(v)}'>{e(str(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _cls(v) -> str:
    """Numbers right-aligned, words left-aligned, verdicts coloured."""
    if str(v) in ("FAIL", "ok"):
        return f"n {v}"
    text = str(v).replace(".", "", 1).replace("%", "").replace(" / ", "").replace("(", "").replace(")", "")
    return "n" if text.replace(" ", "").isdigit() or str(v) in ("-", "inf (empty cell)") else "t"
