"""What every pillar's rules share: a check's outcome, a smoke request's answer, and the request's
server span, which metrics and logs of that request are matched against."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from builder.naming import VARIANT_LABEL
from builder.spec.service import SmokeRequest
from builder.verify.receiver import AttributeValue, ReceivedSpan


@dataclass(frozen=True)
class Check:
    description: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class SmokeResponse:
    request: SmokeRequest
    status: int  # 0: no HTTP answer at all (see `error`)
    error: str = ""


def server_span(spans: Sequence[ReceivedSpan], route: str) -> ReceivedSpan | None:
    return next((s for s in spans if s.kind == "SERVER" and s.attributes.get("http.route") == route),
                None)


def label(smoke: SmokeRequest) -> str:
    """How a smoke request is named in check descriptions."""
    return f"{smoke.method} {smoke.path}"


def resource_check(pillar: str, resources: Sequence[Mapping[str, AttributeValue]],
                   service: str, variant: str) -> Check:
    """Every item of a pillar carries the image's resource: service.name and the variant."""
    names = sorted({str(resource.get("service.name")) for resource in resources})
    variants = sorted({str(resource.get(VARIANT_LABEL)) for resource in resources})
    return Check(f"{pillar} resource service.name = {service}, {VARIANT_LABEL} = {variant}",
                 names == [service] and variants == [variant],
                 f"got service.name {names}, {VARIANT_LABEL} {variants}")
