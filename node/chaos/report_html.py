"""The HTML report of a `shoal chaos run`, with an SVG timeline.

How this works: `render_html(result)` turns the run's result (the dict that
is also written as report.json) into one self-contained page: the verdict
per invariant, the replay command, per-fault figures, and a timeline drawn
as inline SVG: one lane per fault kind with a band per fault, then per job
its desired replicas (dashed) and the slots running (solid) at each sample,
the heal and the convergence as vertical lines, and every violation with a
time as a red mark.  No script, no external file.
"""

from __future__ import annotations

import html
import re
from typing import Any

from node.chaos import invariants as inv

W, LEFT, RIGHT = 1100, 120, 20
LANE_H, JOB_H = 18, 70
COLOURS = {"kill": "#d62728", "restart": "#ff7f0e", "partition": "#9467bd", "loss": "#8c564b",
           "delay": "#17becf", "pause": "#bcbd22", "engine-stall": "#e377c2",
           "clock-skew": "#7f7f7f"}


def _e(x: object) -> str:
    return html.escape(str(x))


def _per_job(samples: list[dict[str, Any]]) -> dict[str, list[tuple[float, int, int]]]:
    """job -> [(t, desired, running slots)] per sample."""
    jobs: dict[str, list[tuple[float, int, int]]] = {}
    names = sorted({j for s in samples for j in (*(s.get("desired") or {}), *(s.get("desired_global") or {}))})
    for s in samples:
        desired, global_ = s.get("desired") or {}, s.get("desired_global") or {}
        counts = s.get("counts") or {}
        for j in names:
            if j in global_:    # one copy per node, any index: the slots of it that run
                want = global_[j]
                running = sum(1 for slot, k in counts.items() if k >= 1 and slot.rpartition("/")[0] == j)
            else:
                want = desired.get(j, 0)
                running = sum(1 for i in range(want) if counts.get(f"{j}/{i}", 0) >= 1)
            jobs.setdefault(j, []).append((s["t"], want, running))
    return jobs


def timeline_svg(result: dict[str, Any]) -> str:
    samples = result.get("samples") or []
    faults = result.get("faults") or []
    t_end = max([s["t"] for s in samples] + [f["end"] for f in faults] + [1.0])
    kinds = [k for k in COLOURS if any(f["kind"] == k for f in faults)]
    jobs = _per_job(samples)
    height = 30 + LANE_H * len(kinds) + JOB_H * len(jobs) + 30

    def x(t: float) -> float:
        return LEFT + (W - LEFT - RIGHT) * max(0.0, t) / t_end

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" font-family="sans-serif" '
           f'font-size="11">']
    y = 20
    for k in kinds:
        out.append(f'<text x="4" y="{y + 12}">{_e(k)}</text>')
        for f in faults:
            if f["kind"] == k:
                w = max(1.0, x(f["end"]) - x(f["start"]))
                nodes = ",".join(map(str, f.get("nodes") or []))
                out.append(f'<rect x="{x(f["start"]):.1f}" y="{y}" width="{w:.1f}" height="{LANE_H - 4}" '
                           f'fill="{COLOURS[k]}" opacity="0.6"><title>{_e(k)} {_e(nodes)} '
                           f'{f["start"]:.1f}-{f["end"]:.1f} s</title></rect>')
        y += LANE_H
    for j, rows in jobs.items():
        top = max([d for _, d, _ in rows] + [r for _, _, r in rows] + [1])
        base = y + JOB_H - 12

        def yv(v: int, top: int = top, base: int = base) -> float:
            return base - (JOB_H - 24) * v / top

        out.append(f'<text x="4" y="{y + 14}">{_e(j)}</text>')
        out.append(f'<line x1="{LEFT}" y1="{base}" x2="{W - RIGHT}" y2="{base}" stroke="#ccc"/>')
        for idx, style in ((1, 'stroke-dasharray="4 3" stroke="#888"'), (2, 'stroke="#1f77b4"')):
            pts = " ".join(f"{x(r[0]):.1f},{yv(r[idx]):.1f}" for r in rows)
            out.append(f'<polyline points="{pts}" fill="none" {style} stroke-width="1.5"/>')
        out.append(f'<text x="4" y="{y + 28}" fill="#888">max {top}</text>')
        y += JOB_H
    for label, t, colour in (("heal", result.get("heal_t"), "#2ca02c"),
                             ("converged", (result.get("heal_t") or 0) + result["converged_after_heal_s"]
                              if result.get("converged_after_heal_s") is not None else None, "#2ca02c")):
        if t is not None:
            out.append(f'<line x1="{x(t):.1f}" y1="12" x2="{x(t):.1f}" y2="{y}" stroke="{colour}" '
                       f'stroke-dasharray="2 2"/><text x="{x(t) + 2:.1f}" y="12" fill="{colour}">{label}</text>')
    for name, msgs in (result.get("violations") or {}).items():
        for m in msgs:
            hit = re.match(r"t=([0-9.]+)", m)
            if hit:
                tx = x(float(hit.group(1)))
                out.append(f'<path d="M{tx - 4:.1f},{y + 14} l4,-8 l4,8 z" fill="red"><title>{_e(name)}: '
                           f'{_e(m)}</title></path>')
    for k in range(0, int(t_end) + 1, max(10, int(t_end / 10) // 10 * 10 or 10)):
        out.append(f'<text x="{x(k):.1f}" y="{y + 26}" text-anchor="middle" fill="#666">{k}s</text>')
    out.append("</svg>")
    return "\n".join(out)


def _s(v: object) -> str:
    return "-" if v is None else f"{v} s"


def _audit(audit: dict[str, Any] | None) -> str:
    if not audit:
        return ""
    if audit.get("error"):
        return f"<code>shoal chaos check</code> after the heal could not run: {_e(audit['error'])}"
    if audit.get("clean"):
        return "<code>shoal chaos check</code> after the heal (the agents' word): clean."
    items = [p["message"] for p in audit.get("problems", [])] + list(audit.get("warnings", []))
    return ("<code>shoal chaos check</code> after the heal (the agents' word) found:<ul>"
            + "".join(f"<li>{_e(m)}</li>" for m in items[:20]) + "</ul>")


def render_html(result: dict[str, Any]) -> str:
    o = result.get("options", {})
    verdict = "PASS" if result.get("ok") else "FAIL"
    rows = []
    for name in inv.INVARIANTS:
        if name not in (result.get("violations") or {}):
            rows.append(f"<tr><td>{_e(name)}</td><td>not checked here</td></tr>")
            continue
        msgs = result["violations"][name]
        cell = "PASS" if not msgs else "FAIL<ul>" + "".join(f"<li>{_e(m)}</li>" for m in msgs[:20]) + "</ul>"
        rows.append(f"<tr><td>{_e(name)}</td><td>{cell}</td></tr>")
    frows = "".join(
        f"<tr><td>{_e(f['kind'])}</td><td>{_e(','.join(map(str, f.get('nodes') or [])))}</td>"
        f"<td>{f['start']:.1f}-{f['end']:.1f}</td><td>{_s(f['detect_s'])}</td><td>{_s(f['replace_s'])}</td>"
        f"<td>{_s(f['converge_s'])}</td></tr>" for f in result.get("faults") or [])
    drows = "".join(
        f"<tr><td>{_e(d['slot'])}</td><td>{d['start']:.1f}</td><td>{_s(d['end'])}</td>"
        f"<td>{_e(','.join(d['during']) or '-')}</td></tr>" for d in result.get("doubled") or [])
    acts = "".join(f"<tr><td>{a['t']:.1f}</td><td>{_e(a['what'])}</td><td>{'ok' if a['ok'] else _e(a['detail'])}"
                   f"</td></tr>" for a in result.get("actions") or [])
    dropped = result.get("dropped_faults") or []
    not_here = f" (not on the testbed: {_e(', '.join(dropped))})" if dropped else ""
    notes = "".join(f"<li>{_e(n)}</li>" for n in result.get("live_notes") or [])
    notes = f"<ul>{notes}</ul>" if notes else ""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>shoal chaos run: {verdict}</title>
<style>body{{font-family:sans-serif;margin:1.5em}} table{{border-collapse:collapse;margin:.5em 0}}
td,th{{border:1px solid #ddd;padding:2px 8px;text-align:left;vertical-align:top}} code{{background:#f4f4f4}}</style>
</head><body>
<h1>shoal chaos run: {verdict}</h1>
<p>{_e(o.get('nodes'))} nodes, {_e(o.get('duration_s'))} s of faults, seed {_e(o.get('seed'))},
faults {_e(','.join(o.get('faults') or []))}{not_here};
job mix running {_s(result.get('deployed_s'))} after deploying; converged {_s(result.get('converged_after_heal_s'))}
after the heal; {_e(result.get('acked_writes'))} acknowledged job writes.</p>
{notes}<p>Replay: <code>{_e(result.get('replay', ''))}</code></p>
<h2>Invariants</h2><table>{''.join(rows)}</table>
<p>{_audit(result.get('audit'))}</p>
<h2>Timeline</h2>
<p>Bands: faults. Per job: desired replicas (dashed), slots running on the dockerds (solid). Red: violations.</p>
{timeline_svg(result)}
<h2>Faults</h2><table><tr><th>kind</th><th>nodes</th><th>s</th><th>detect</th><th>re-place</th>
<th>converge after its end</th></tr>{frows}</table>
<h2>Doubled copies</h2><table><tr><th>slot</th><th>from</th><th>until</th><th>faults in force</th></tr>{drows}</table>
<details><summary>Actions ({len(result.get('actions') or [])})</summary>
<table><tr><th>t</th><th>what</th><th>result</th></tr>{acts}</table></details>
</body></html>
"""
