"""report.md and a self-contained report.html from the same blocks, and the three files
written atomically."""

from __future__ import annotations

import base64
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from benchmarks.report.model import Report
from benchmarks.report.sections import report_blocks, report_parts, title
from benchmarks.targets.sections import DASH
from compressor.atomic import write_json, write_text
from compressor.markdown import table


def render_markdown(report: Report) -> str:
    """The report as GitHub-flavoured Markdown; empty sections show a dash."""
    out = [f"# {title(report)}", ""]
    for block in report_blocks(report):
        out += [f"## {block.title}", ""]
        if not block.lines and not block.rows:
            out += [DASH, ""]
            continue
        if block.lines:
            out += [f"- {line}" for line in block.lines] + [""]
        if block.rows:
            out.append(table(block.headers, block.rows))
    return "\n".join(out)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def templates(*, autoescape: bool) -> Environment:
    """The package's templates, strict about undefined names. The HTML report escapes (every
    label, path and note, so a model name with a '<' cannot break or inject into the page);
    the Markdown model card does not (its tables escape their own cells)."""
    return Environment(
        loader=PackageLoader("benchmarks.report", "templates"),
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _environment() -> Environment:
    env = templates(autoescape=True)
    env.filters["data_uri"] = data_uri
    return env


def render_html(report: Report) -> str:
    """One file with inline CSS and the plots as data URIs, so it can be mailed or archived."""
    template = _environment().get_template("report.html.j2")
    return template.render(title=title(report), parts=report_parts(report), dash=DASH)


def write_report(run_dir: Path, report: Report) -> dict[str, Path]:
    """Write report.json, report.md and report.html into `run_dir`, each atomically."""
    run_dir = Path(run_dir)
    paths = {
        "json": run_dir / "report.json",
        "md": run_dir / "report.md",
        "html": run_dir / "report.html",
    }
    write_json(paths["json"], report.record())
    write_text(paths["md"], render_markdown(report))
    write_text(paths["html"], render_html(report))
    return paths
