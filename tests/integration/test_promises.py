"""Every target templates/catalog.yaml declares keeps its promises on the image built here, checked by
the same registered checks `compare` and the gate use. Parametrized from the catalog: a new flavor
is tested without editing this file. The images come from the session's `built` fixture."""

from __future__ import annotations

import io
import json
import secrets
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from builder.build.images import BuildResult, ImageBuilder
from builder.cli.main import main
from builder.engine.client import Engine
from builder.inspect.checks import REGISTRY, evaluate, failed
from builder.inspect.surface import attack_surface
from builder.project import Project
from builder.spec.catalog import Target

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PROJECT = Project(ROOT)
CASES = [(service.name, target) for service in PROJECT.services()
         for target in PROJECT.catalog.targets(service)]


def built_image(request: pytest.FixtureRequest, image_builder: ImageBuilder, service: str,
                target: Target) -> BuildResult:
    """The session's image of `target`; skipped, naming it, when a base it needs is missing here."""
    for ref in dict.fromkeys((target.base, target.builder)):
        availability = image_builder.bases.availability(ref)
        if not availability.available:
            pytest.skip(f"base image {ref} is not available here: {availability.how}")
    # Asked for only now, so a target skipped above does not wait for the session's builds.
    built: dict[tuple[str, str], BuildResult] = request.getfixturevalue("built")
    found = next((result for (name, _), result in built.items()
                  if name == service and result.target.label == target.label), None)
    if found is None:
        # `built` makes dev and the first available flavor; a later one's base being here too
        # (e.g. distroless where alpine can be pulled) is not a missing base, so say exactly why.
        chosen = built[(service, "prod")].target.label
        pytest.skip(f"{service} {target.label}: its bases are here, but the session's `built` "
                    f"fixture builds only the preferred available flavor ({chosen})")
    return found


@pytest.mark.parametrize(("service", "target"), CASES,
                         ids=[f"{service}-{target.label}" for service, target in CASES])
def test_every_promise_of_the_catalog_holds_on_the_built_image(
        request: pytest.FixtureRequest, image_builder: ImageBuilder, engine: Engine,
        service: str, target: Target) -> None:
    result = built_image(request, image_builder, service, target)
    surface = attack_surface(engine, result.image_id, PROJECT.layout.image)
    config = engine.inspect_image(result.image_id)["Config"] or {}
    results = evaluate(target.promises, surface, config)
    declared = [check.promise for check in REGISTRY.values()
                if getattr(target.promises, check.promise) is not None]
    assert [r.promise for r in results] == declared
    assert failed(results) == [], "; ".join(f"{r.id} {r.promise}: {r.detail}"
                                            for r in failed(results))


@pytest.fixture
def world_writable_prod(built: dict[tuple[str, str], BuildResult],
                        docker_client: docker.DockerClient) -> Iterator[tuple[str, Target]]:
    """The session's backend-flask prod image plus one file anyone may write, under its own tag."""
    prod = built[("backend-flask", "prod")]
    dockerfile = (f"FROM {prod.image_id}\nCOPY notes.txt /app/notes.txt\n").encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data, mode in (("Dockerfile", dockerfile, 0o644), ("notes.txt", b"x\n", 0o666)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    tag = f"imagewright-test/broken-promise:{secrets.token_hex(4)}"
    docker_client.images.build(fileobj=context, custom_context=True, tag=tag, pull=False, rm=True)
    try:
        yield tag, prod.target
    finally:
        docker_client.images.remove(tag, force=True)


def test_a_broken_promise_fails_the_prod_gate_by_its_id(world_writable_prod: tuple[str, Target],
                                                        tmp_path: Path) -> None:
    tag, target = world_writable_prod
    assert target.promises.world_writable is False, "every prod flavor promises this today"
    ignorefile = tmp_path / "empty.trivyignore.yaml"
    ignorefile.write_text("{}\n")
    reports = tmp_path / "reports"
    code = main(["-C", str(ROOT), "scan", "--image", tag, "--cache-dir", str(tmp_path / "cache"),
                 "--reports-dir", str(reports), "--ignorefile", str(ignorefile)])
    assert code == 1
    gate = json.loads((reports / "backend-flask" / "prod" / "scan.json").read_text())["gate"]
    assert [(v["scanner"], v["id"], v["detail"]) for v in gate["violations"]] == [
        ("promise", "IW-FS-002", "promised no, found yes (/app/notes.txt)")]
    assert {p["id"] for p in gate["promises"] if p["passed"]} == set(REGISTRY) - {"IW-FS-002"}
    summary = (reports / "backend-flask" / "prod" / "summary.md").read_text()
    assert "1 of 9 broken: IW-FS-002 (world_writable)" in summary
