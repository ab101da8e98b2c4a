"""ServiceMap → `reports/service-map/<label>.json` and `.html`: a self-contained page (inline CSS
and SVG, no script, no network) with the map drawn and the same figures as tables."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder import naming
from builder.core.files import atomic_write
from builder.report.common import write_json
from builder.verify.service_map import ServiceMap

SCHEMA = "imagewright.service-map/1"
# Fills and strokes of the drawing; nothing else on the page uses them (tests look for them).
NODE_FILL = "#c7d2fe"
EDGE_COLOUR = "#4f46e5"
ERROR_EDGE_COLOUR = "#dc2626"
EXTERNAL_FILL = "#e5e7eb"

NODE_WIDTH, NODE_HEIGHT = 210, 64
COLUMN_GAP, ROW_GAP, MARGIN = 190, 40, 24


@dataclass(frozen=True)
class MapContext:
    """What the map was made from, for the page's heading."""

    label: str  # "dev", "prod", "dev-loop"
    created: str
    images: tuple[tuple[str, str], ...]  # (service, image)
    spans: int


def map_document(service_map: ServiceMap, context: MapContext) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "label": context.label,
        "created": context.created,
        "images": {service: image for service, image in context.images},
        "spans": context.spans,
        "nodes": [{"service": n.service, "spans": n.spans, "requests": n.requests, "errors": n.errors}
                  for n in service_map.nodes],
        "edges": [{"caller": e.caller, "callee": e.callee, "requests": e.requests,
                   "errors": e.errors, "median_ms": round(e.median_ms, 2),
                   "latencies_ms": [round(ms, 2) for ms in e.latencies_ms]}
                  for e in service_map.edges],
        "external_calls": [{"caller": c.caller, "peer": c.peer, "requests": c.requests,
                            "errors": c.errors, "median_ms": round(c.median_ms, 2)}
                           for c in service_map.external],
        "notes": "An edge is a CLIENT span in the caller that is the parent of a SERVER span in the "
                 "callee. Latency is the CLIENT span's duration. External calls are CLIENT spans "
                 "no received SERVER span answered.",
    }


def write_service_map(reports_dir: Path, service_map: ServiceMap, context: MapContext
                      ) -> tuple[Path, Path]:
    """Both files, atomically; returns (html, json)."""
    html_path = naming.service_map_report(reports_dir, context.label, "html")
    json_path = naming.service_map_report(reports_dir, context.label, "json")
    write_json(json_path, map_document(service_map, context))
    atomic_write(html_path, html_page(service_map, context))
    return html_path, json_path


def _box(x: float, y: float, title: str, subtitle: str, *, external: bool) -> str:
    e = html.escape
    fill, dash = (EXTERNAL_FILL, ' stroke-dasharray="6 4"') if external else (NODE_FILL, "")
    return (f'<g class="{"peer" if external else "node"}">'
            f'<rect x="{x}" y="{y}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="8" '
            f'fill="{fill}" stroke="#1f2937" stroke-width="1.5"{dash}/>'
            f'<text x="{x + NODE_WIDTH / 2}" y="{y + 26}" text-anchor="middle" class="name">'
            f'{e(title)}</text>'
            f'<text x="{x + NODE_WIDTH / 2}" y="{y + 46}" text-anchor="middle" class="figures">'
            f'{e(subtitle)}</text></g>')


def _arrow(start: tuple[float, float], end: tuple[float, float], colour: str,
           labels: tuple[str, str], *, dashed: bool) -> str:
    """A call: an arrow from caller to callee, its counts above the line and its latency below."""
    (x1, y1), (x2, y2) = start, end
    marker = {EDGE_COLOUR: "arrow", ERROR_EDGE_COLOUR: "arrow-error"}.get(colour, "arrow-external")
    dash = ' stroke-dasharray="7 5"' if dashed else ""
    # Backwards or same-column calls (a cycle) bend below the boxes instead of crossing them.
    if x2 <= x1:
        dip = max(y1, y2) + NODE_HEIGHT
        path = f"M{x1},{y1} C{x1 + 60},{dip} {x2 - 60},{dip} {x2},{y2}"
        label_x, label_y = (x1 + x2) / 2, dip - 6
    else:
        path = f"M{x1},{y1} L{x2},{y2}"
        label_x, label_y = (x1 + x2) / 2, (y1 + y2) / 2
    above, below = (html.escape(label) for label in labels)
    return (f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="3"{dash} '
            f'marker-end="url(#{marker})"/>'
            f'<text x="{label_x}" y="{label_y - 8}" text-anchor="middle" class="edge-label">'
            f'{above}</text>'
            f'<text x="{label_x}" y="{label_y + 18}" text-anchor="middle" class="edge-label">'
            f'{below}</text>')


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _call_labels(requests: int, errors: int, median_ms: float) -> tuple[str, str]:
    return f"{_plural(requests, 'call')} · {_plural(errors, 'error')}", f"median {median_ms:,.1f} ms"


def map_svg(service_map: ServiceMap) -> str:
    """The map, callers to the left of what they call: one column per call depth."""
    depths = service_map.depths()
    columns: dict[int, list[str]] = {}
    for node in service_map.nodes:
        columns.setdefault(depths[node.service], []).append(node.service)
    peers: dict[str, int] = {}  # external peer → its column: right of its deepest caller
    for call in service_map.external:
        peers[call.peer] = max(peers.get(call.peer, 0), depths[call.caller] + 1)
    for peer, column in sorted(peers.items()):
        columns.setdefault(column, []).append(f"peer:{peer}")
    position: dict[str, tuple[float, float]] = {}
    for column, names in columns.items():
        for row, name in enumerate(names):
            position[name] = (MARGIN + column * (NODE_WIDTH + COLUMN_GAP),
                              MARGIN + 30 + row * (NODE_HEIGHT + ROW_GAP))
    width = MARGIN * 2 + (max(columns, default=0) + 1) * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP
    # Room below the boxes only for calls drawn backwards (a cycle), which bend under them.
    backwards = any(depths[e.callee] <= depths[e.caller] for e in service_map.edges)
    height = MARGIN * 2 + 30 + max((len(n) for n in columns.values()), default=1) \
        * (NODE_HEIGHT + ROW_GAP) + (NODE_HEIGHT if backwards else 0)

    def right(name: str) -> tuple[float, float]:
        x, y = position[name]
        return x + NODE_WIDTH, y + NODE_HEIGHT / 2

    def left(name: str) -> tuple[float, float]:
        x, y = position[name]
        return x - 4, y + NODE_HEIGHT / 2

    parts = [f'<svg id="service-map" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="service map">', "<defs>"]
    for marker, colour in (("arrow", EDGE_COLOUR), ("arrow-error", ERROR_EDGE_COLOUR),
                           ("arrow-external", "#6b7280")):
        parts.append(f'<marker id="{marker}" viewBox="0 0 10 10" refX="9" refY="5" '
                     f'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
                     f'<path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>')
    parts.append("</defs>")
    for edge in service_map.edges:
        colour = ERROR_EDGE_COLOUR if edge.errors else EDGE_COLOUR
        parts.append(_arrow(right(edge.caller), left(edge.callee), colour,
                            _call_labels(edge.requests, edge.errors, edge.median_ms), dashed=False))
    for call in service_map.external:
        parts.append(_arrow(right(call.caller), left(f"peer:{call.peer}"), "#6b7280",
                            _call_labels(call.requests, call.errors, call.median_ms), dashed=True))
    for node in service_map.nodes:
        x, y = position[node.service]
        parts.append(_box(x, y, node.service, f"{_plural(node.requests, 'request')} answered · "
                          f"{_plural(node.errors, 'error')}", external=False))
    for peer in peers:
        x, y = position[f"peer:{peer}"]
        parts.append(_box(x, y, peer, "not traced here", external=True))
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2937;
       margin: 24px auto; max-width: 1320px; padding: 0 16px; background: #ffffff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.meta { color: #4b5563; margin: 0 0 16px; }
figure { margin: 0; padding: 12px; border: 1px solid #f3f4f6; border-radius: 6px; overflow-x: auto; }
.name { font-weight: 600; font-size: 14px; fill: #111827; }
.figures, .edge-label { font-size: 12px; fill: #374151; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #f3f4f6; padding: 4px 10px; text-align: left; }
th { background: #f9fafb; } td.num { text-align: right; } td.bad { color: #b91c1c; font-weight: 600; }
"""


def html_page(service_map: ServiceMap, context: MapContext) -> str:
    e = html.escape
    edges = "".join(
        f"<tr><td>{e(edge.caller)}</td><td>{e(edge.callee)}</td><td class=num>{edge.requests}</td>"
        f"<td class=\"num{' bad' if edge.errors else ''}\">{edge.errors}</td>"
        f"<td class=num>{edge.median_ms:,.1f} ms</td></tr>" for edge in service_map.edges)
    external = "".join(
        f"<tr><td>{e(call.caller)}</td><td>{e(call.peer)}</td><td class=num>{call.requests}</td>"
        f"<td class=\"num{' bad' if call.errors else ''}\">{call.errors}</td>"
        f"<td class=num>{call.median_ms:,.1f} ms</td></tr>" for call in service_map.external)
    images = ", ".join(f"{service} ({image})" for service, image in context.images)
    heading = "<tr><th>caller</th><th>{}</th><th>calls</th><th>errors</th><th>median</th></tr>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>service map: {e(context.label)}</title>
<style>{_CSS}</style></head>
<body>
<h1>Service map: {e(context.label)}</h1>
<p class="meta">Built {e(context.created)} from {context.spans} spans received by imagewright's
OTLP receiver{f": {e(images)}" if images else ""}.</p>
<figure>{map_svg(service_map)}</figure>
<h2>Calls between services</h2>
{f"<table>{heading.format('callee')}{edges}</table>" if edges else "<p>none seen</p>"}
<h2>Calls no traced service answered</h2>
{f"<table>{heading.format('peer')}{external}</table>" if external else "<p>none</p>"}
<p class="meta">An arrow is a CLIENT span in the caller whose child is a SERVER span in the callee:
the trace context crossed the call. Latency is the caller's CLIENT span. A dashed box is a peer
whose answer was not traced here (not instrumented, not running, or the context was lost).</p>
</body></html>
"""
