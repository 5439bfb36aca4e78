"""The pieces a report's text is made of (heading, paragraph, bullet list, table, picture), each written as
Markdown or as HTML: report.md and report.html come from one list of blocks. Imports nothing of ours."""
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

    def markdown(self) -> str:
        return f"{'#' * self.level} {self.text}\n"

    def html(self) -> str:
        return f"<h{self.level}>{html.escape(self.text)}</h{self.level}>"


@dataclass(frozen=True)
class Paragraph:
    text: str

    def markdown(self) -> str:
        return f"{self.text}\n"

    def html(self) -> str:
        return f"<p>{html.escape(self.text)}</p>"


@dataclass(frozen=True)
class Bullets:
    lines: list[str]

    def markdown(self) -> str:
        return "\n".join(f"- {line}" for line in self.lines) + "\n"

    def html(self) -> str:
        return "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in self.lines) + "</ul>"


@dataclass(frozen=True)
class Table:
    head: list
    rows: list[list]

    def markdown(self) -> str:
        def cell(v) -> str:
            return str(v).replace("|", "\\|")
        return "\n".join(["| " + " | ".join(cell(h) for h in self.head) + " |", "|" + "---|" * len(self.head)]
                         + ["| " + " | ".join(cell(v) for v in r) + " |" for r in self.rows]) + "\n"

    def html(self) -> str:
        e = html.escape
        head = "".join(f"<th>{e(str(h))}</th>" for h in self.head)
        rows = "".join("<tr>" + "".join(f"<td class='{_cls(v)}'>{e(str(v))}</td>" for v in r) + "</tr>"
                       for r in self.rows)
        return f"<table><tr>{head}</tr>{rows}</table>"


@dataclass(frozen=True)
class Picture:
    name: str       # figures/{name}.png beside report.md
    caption: str
    png: bytes      # inlined in report.html

    def markdown(self) -> str:
        return f"![{self.caption}](figures/{self.name}.png)\n\n*{self.caption}*\n"

    def html(self) -> str:
        e = html.escape
        data = base64.b64encode(self.png).decode("ascii")
        return (f"<figure><img alt='{e(self.name)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{e(self.caption)}</figcaption></figure>")


Block = Heading | Paragraph | Bullets | Table | Picture


def to_markdown(blocks: list[Block]) -> str:
    return "\n".join(b.markdown() for b in blocks)


def to_html(blocks: list[Block], title: str) -> str:
    """A self-contained page: style inline, pictures as base64 data URIs."""
    head = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>")
    return "\n".join([head, *(b.html() for b in blocks), "</body></html>"])


def _cls(v) -> str:
    """Numbers right-aligned, words left-aligned, verdicts coloured."""
    if str(v) in ("FAIL", "ok"):
        return f"n {v}"
    text = str(v).replace(".", "", 1).replace("%", "").replace(" / ", "").replace("(", "").replace(")", "")
    return "n" if text.replace(" ", "").isdigit() or str(v) in ("-", "inf (empty cell)") else "t"
