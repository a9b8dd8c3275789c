"""What the commands return and how it looks: :class:`Result`, as text tables or HTML tables.

Shared by ``jupyter envmgr`` (text, :func:`render_text`) and ``%envmgr`` (a mime bundle of text
and HTML, :func:`render_html`). Standard library only: the magics import it in kernels whose
environment lacks the core's dependencies. Every value is escaped in HTML.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Result:
    """What a command did. ``data`` is what ``--json`` prints; ``message`` one line for people."""

    kind: str  # envs | env | builds | build | info | text | message
    data: Any
    message: str = ""
    ok: bool = True
    text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        return cls(**{k: data[k] for k in ("kind", "data", "message", "ok", "text") if k in data})


def build_message(
    scope: str, name: str, build: dict[str, Any], env: dict[str, Any], elapsed: float, note=""
) -> str:
    """``✓ built local/x v3 (12 packages) in 1.2s`` or ``✗ build of local/x v3 failed ...``."""
    where = f"{scope}/{name} v{build['version']}"
    kind, source = build["kind"], build.get("source") or {}
    if build["status"] == "succeeded":
        if kind == "revert":
            what = f"reverted {scope}/{name} to v{source.get('version')} as v{build['version']}"
        elif kind == "copy":
            what = f"copied {source.get('scope')}/{source.get('name')} v{source.get('version')}"
            what += f" to {where}"
        else:
            what = f"built {where}"
        return f"✓ {what} ({env['packages']} packages) in {elapsed:.1f}s"
    if build["status"] == "cancelled":
        return f"✗ {kind} of {where} was cancelled{note}"
    phase = f" in phase {build['phase']}" if build.get("phase") else ""
    return f"✗ {kind} of {where} {build['status']}{phase}{note}: {build.get('error')}"


# -- tables ---------------------------------------------------------------------------------------


@dataclass
class Table:
    """Rows to show; without ``headers`` it is a two-column field/value table."""

    rows: list[list[str]]
    headers: list[str] | None = None
    title: str = ""
    classes: list[str] = field(default_factory=list)


def _when(stamp: str | None) -> str:
    return stamp[:19].replace("T", " ") if stamp else "-"


def _duration(build: dict[str, Any]) -> str:
    try:
        start = datetime.fromisoformat(build["started_at"])
        end = datetime.fromisoformat(build["finished_at"])
    except (KeyError, TypeError, ValueError):
        return "-"
    return f"{(end - start).total_seconds():.1f}s"


def _kernel(env: dict[str, Any]) -> str:
    kernel = env.get("kernel")
    if not kernel:
        return "-"
    return kernel["name"] if kernel["active"] else f"{kernel['name']} (inactive)"


def _one_line(text: str, limit: int = 120) -> str:
    """The first line of ``text``, shortened for a table cell (the full text is in the log)."""
    first = " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""
    more = "\n" in text.strip() or len(first) > limit
    return (first[:limit] + " …") if more else first


def _join(items: list[str] | None) -> str:
    return ", ".join(items) if items else "-"


def tables(result: Result) -> list[Table]:
    """The tables a result is shown as (text in terminals, HTML in notebooks)."""
    data = result.data
    if result.kind == "envs":
        headers = ["name", "scope", "status", "version", "python", "packages", "kernel"]
        rows = [
            [
                e["name"] + ("" if e["managed"] else " (unmanaged)"),
                e["scope"],
                e["status"] + (f" ({e['phase']})" if e.get("phase") else ""),
                str(e["version"] or "-"),
                e["python_version"] or "-",
                str(e["packages"] or "-"),
                _kernel(e),
            ]
            for e in data["environments"]
        ]
        return [Table(rows, headers)] if rows else []
    if result.kind == "env":
        return _env_tables(data)
    if result.kind == "builds":
        return [_builds_table(data["builds"], data.get("active_version"))]
    if result.kind == "packages":
        headers = ["name", "version", "build", "channel", "kind", "size", "requested"]
        rows = [
            [
                p["name"],
                p["version"],
                p["build"] or "-",
                p["channel"] or "-",
                p["kind"],
                _size(p["size"]),
                "yes" if p["requested"] else "",
            ]
            for p in data["packages"]
        ]
        title = f"{data['scope']}/{data['name']} v{data['version']}: {len(rows)} packages"
        return [Table(rows, headers, title=title)]
    if result.kind == "diff":
        return [_diff_table(data)]
    if result.kind == "search":
        headers = ["name", "latest", "versions", "channels"]
        rows = [
            [
                p["name"],
                p["latest"],
                _join(p["versions"][:8]) + (" …" if len(p["versions"]) > 8 else ""),
                _join(p["channels"]),
            ]
            for p in data["packages"]
        ]
        return (
            [Table(rows, headers, title=f"packages starting with {data['query']!r}")]
            if rows
            else []
        )
    if result.kind == "fleet":
        return [_fleet_table(data["results"])] if data["results"] else []
    if result.kind == "which":
        headers = ["environment", "version", "package", "package version", "kind"]
        rows = [
            [
                f"{m['scope']}/{m['name']}",
                f"v{m['version']}" if m["version"] else "(unmanaged)",
                m["package"],
                m["package_version"],
                m["kind"],
            ]
            for m in data["matches"]
        ]
        return (
            [Table(rows, headers, title=f"environments holding {data['spec']!r}")] if rows else []
        )
    if result.kind in ("requests", "review", "audit"):
        return publishing_tables(result.kind, data)
    if result.kind == "info":
        return [Table([[k, v if isinstance(v, str) else json.dumps(v)] for k, v in data.items()])]
    return []


def _fleet_table(rows: list[dict[str, Any]]) -> Table:
    out = []
    for r in rows:
        after = r["version_after"] or (f"(v{r['build']})" if r.get("build") else "-")
        versions = f"v{r['version_before'] or '-'} → " + (
            f"v{after}" if isinstance(after, int) else after
        )
        packages = ", ".join(
            f"{p['name']} {p['before'] or '-'} → {p['after'] or '-'}" for p in r["packages"]
        )
        out.append(
            [
                f"{r['scope']}/{r['name']}",
                versions,
                packages or "-",
                r["outcome"],
                _one_line(r["reason"] or ""),
            ]
        )
    return Table(out, ["environment", "version", "packages", "outcome", "reason"])


def fleet_summary(rows: list[dict[str, Any]]) -> str:
    """``2 succeeded, 1 skipped`` over the rows of an install into many environments."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    text = ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
    return text or "No environments."


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def size_text(size: int | None) -> str:
    """Bytes for people (``1.2 MB``)."""
    return _size(size)


def diff_summary(data: dict[str, Any]) -> str:
    """``3 added, 1 upgraded`` (or ``no changes``)."""
    parts = [
        f"{len(data[what])} {what}"
        for what in ("added", "removed", "upgraded", "downgraded", "rebuilt")
        if data[what]
    ]
    return ", ".join(parts) or "no changes"


def _diff_table(data: dict[str, Any]) -> Table:
    a, b = data["from"], data["to"]
    same = (a["scope"], a["name"]) == (b["scope"], b["name"])
    title = (
        f"{a['scope']}/{a['name']} v{a['version']} → v{b['version']}"
        if same
        else f"{a['scope']}/{a['name']} v{a['version']} → {b['scope']}/{b['name']} v{b['version']}"
    )
    rows = []
    for what, sign in (("added", "+"), ("removed", "-")):
        rows += [[sign, p["name"], p["kind"], p["version"]] for p in data[what]]
    for what in ("upgraded", "downgraded", "rebuilt"):
        rows += [[what[0], p["name"], p["kind"], f"{p['from']} → {p['to']}"] for p in data[what]]
    return Table(rows, ["", "name", "kind", "version"], title=f"{title}: {diff_summary(data)}")


def _env_tables(env: dict[str, Any]) -> list[Table]:
    spec = env["spec"]
    latest = env.get("latest_build")
    rows = [
        ["environment", f"{env['scope']}/{env['name']}"],
        ["display name", env["display_name"]],
        ["status", env["status"] + (f" ({env['phase']})" if env.get("phase") else "")],
        ["version in use", str(env["version"] or "-")],
        ["python", env["python_version"] or "-"],
        ["packages", str(env["packages"])],
        ["kernel", _kernel(env)],
        ["prefix", env["prefix"]],
        ["spec: python", spec.get("python") or spec.get("base") and f"from {spec['base']}" or "-"],
        ["spec: conda", _join(spec.get("conda"))],
        ["spec: pip", _join(spec.get("pip"))],
        ["spec: channels", _join(spec.get("channels")) if spec.get("channels") else "(default)"],
        ["spec: variables", _join([f"{k}={v}" for k, v in (spec.get("variables") or {}).items()])],
        ["created", f"{_when(env['created_at'])} by {env['created_by'] or '-'}"],
        ["updated", _when(env["updated_at"])],
    ]
    if env.get("description"):
        rows.insert(2, ["description", env["description"]])
    if latest:
        note = f": {_one_line(latest['error'])}" if latest.get("error") else ""
        rows.append(
            ["latest build", f"v{latest['version']} {latest['kind']} {latest['status']}{note}"]
        )
    if not env["managed"]:
        rows.append(["managed", f"no: adopt it with 'adopt {env['name']}'"])
    out = [Table(rows, title=f"{env['scope']}/{env['name']}")]
    if env.get("versions"):
        out.append(_builds_table(env["versions"], env["version"]))
    return out


def _builds_table(builds: list[dict[str, Any]], active: int | None) -> Table:
    headers = ["version", "kind", "status", "started", "took", "by", "note"]
    rows = []
    for b in builds:
        source = b.get("source") or {}
        if b["status"] != "succeeded" and b.get("error"):
            note = (f"{b['phase']}: " if b.get("phase") else "") + _one_line(b["error"])
        elif b["kind"] == "revert":
            note = f"from v{source.get('version')}"
        elif b["kind"] == "copy":
            note = f"from {source.get('scope')}/{source.get('name')} v{source.get('version')}"
        else:
            note = ""
        mark = " *" if b["version"] == active else ""
        rows.append(
            [
                f"v{b['version']}{mark}",
                b["kind"],
                b["status"] + (f" ({b['phase']})" if b["status"] == "running" else ""),
                _when(b.get("started_at") or b.get("created_at")),
                _duration(b),
                b.get("user") or "-",
                note,
            ]
        )
    return Table(rows, headers, title="versions (* = in use)")


def table_text(table: Table) -> str:
    headers = table.headers
    rows = ([headers] if headers else []) + table.rows
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [table.title] if table.title and headers else []
    for n, row in enumerate(rows):
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=True)]
        lines.append(("  " if headers else "") + "  ".join(cells).rstrip())
        if headers and n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_text(result: Result) -> str:
    """A result as a terminal shows it."""
    if result.kind == "text":
        return (result.text or "").rstrip("\n")
    parts = [table_text(t) for t in tables(result)]
    if result.message:
        parts.append(result.message)
    return "\n\n".join(parts)


def table_html(table: Table) -> str:
    e = html.escape
    left = ' style="text-align:left"'
    out = ['<table class="jp-EnvManager-table">']
    if table.title:
        out.append(f"<caption{left}><b>{e(table.title)}</b></caption>")
    if table.headers:
        out.append("<thead><tr>" + "".join(f"<th{left}>{e(h)}</th>" for h in table.headers))
        out.append("</tr></thead>")
    out.append("<tbody>")
    for row in table.rows:
        if table.headers:
            out.append("<tr>" + "".join(f"<td{left}>{e(c)}</td>" for c in row) + "</tr>")
        else:
            out.append(f"<tr><th{left}>{e(row[0])}</th><td{left}>{e(row[1])}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render_html(result: Result) -> str:
    """A result's tables as HTML (the message is printed, not rendered)."""
    return "\n".join(table_html(t) for t in tables(result))


# -- publishing -----------------------------------------------------------------------------------


def _request_status(r: dict[str, Any]) -> str:
    detail = r.get("detail") or r.get("error")
    return r["status"] + (f": {_one_line(detail, 60)}" if detail else "")


def publishing_tables(kind: str, data: dict[str, Any]) -> list[Table]:
    """Requests, a review (summary, conda and pip diffs, checks, events), the audit log."""
    if kind == "requests":
        headers = ["id", "name", "kind", "version", "requester", "reason", "submitted", "status"]
        rows = [
            [
                r["id"],
                r["name"],
                r["kind"],
                f"v{r['version']}",
                r["requester"],
                _one_line(r["reason"], 60),
                _when(r["created_at"]),
                _request_status(r),
            ]
            for r in data["requests"]
        ]
        return [Table(rows, headers, title=f"{data['pending']} pending")] if rows else []
    if kind == "audit":
        headers = ["when", "event", "who", "account", "request", "name", "detail"]
        rows = [
            [
                _when(e.get("at")),
                e["event"],
                e.get("who", "-"),
                e.get("account", "-"),
                e.get("request", "-"),
                e.get("name", "-"),
                _one_line(str(e.get("reason") or e.get("error") or e.get("version") or ""), 60),
            ]
            for e in data["events"]
        ]
        return [Table(rows, headers)] if rows else []
    summary = [
        ["request", data["id"]],
        ["name", f"{data['name']} ({data['kind']})"],
        ["version", f"v{data['version']} of {data['source']['scope']}/{data['source']['name']}"],
        ["requester", data["requester"]],
        ["reason", data["reason"]],
        ["submitted", _when(data["created_at"])],
        ["status", _request_status(data)],
        ["size", _size(data.get("size"))],
    ]
    if data.get("decided_by"):
        summary.append(["decided", f"{data['decided_by']} at {_when(data.get('decided_at'))}"])
    out = [Table(summary, title=f"request {data['id']}")]
    diff = data.get("diff")
    if diff:
        base = diff["from"]
        against = f"shared/{base['name']} v{base['version']}" if base else "nothing published"
        for what in ("conda", "pip"):
            part = diff[what]
            rows = [["+", p["name"], p["version"], p.get("channel") or "-"] for p in part["added"]]
            rows += [
                ["-", p["name"], p["version"], p.get("channel") or "-"] for p in part["removed"]
            ]
            for change in ("upgraded", "downgraded", "rebuilt"):
                rows += [
                    [change[0], p["name"], f"{p['from']} → {p['to']}", p.get("channel") or "-"]
                    for p in part[change]
                ]
            title = f"{what} against {against}: {diff_summary(part)}"
            out.append(Table(rows, ["", "name", "version", "channel"], title=title))
    if data.get("checks"):
        rows = [
            [
                c["check"],
                "ok" if c["ok"] else ("BLOCKS" if c["blocking"] else "flagged"),
                c["message"],
            ]
            for c in data["checks"]
        ]
        out.append(Table(rows, ["check", "result", "detail"], title="policy checks"))
    return out
