"""The service map in the terminal: one row per call between services, then calls that left them."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from builder.cli.terminal import console
from builder.verify.service_map import ServiceMap


def show_service_map(service_map: ServiceMap, title: str) -> None:
    if not service_map.nodes:
        console.print(f"[bold]{title}[/]: no spans received, no map")
        return
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("caller")
    table.add_column("")
    table.add_column("callee")
    table.add_column("calls", justify="right")
    table.add_column("errors", justify="right")
    table.add_column("median", justify="right")
    for edge in service_map.edges:
        table.add_row(Text(edge.caller, "bold"), "→", Text(edge.callee, "bold"), str(edge.requests),
                      Text(str(edge.errors), "red" if edge.errors else ""),
                      f"{edge.median_ms:,.1f} ms")
    for call in service_map.external:
        table.add_row(Text(call.caller, "bold"), Text("⇢", "dim"),
                      Text(f"{call.peer} (not traced here)", "dim"), str(call.requests),
                      Text(str(call.errors), "red" if call.errors else ""),
                      f"{call.median_ms:,.1f} ms")
    if service_map.edges or service_map.external:
        console.print(table)
    else:
        console.print(f"[bold]{title}[/]: no calls between services seen")
    nodes = ", ".join(f"{node.service} ({node.requests} requests, {node.errors} errors)"
                      for node in service_map.nodes)
    console.print(Text(f"services: {nodes}"))
