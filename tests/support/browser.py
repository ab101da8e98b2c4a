"""The HTML reports as a browser draws them: a headless Chromium screenshot, counted by colour."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

from PIL import Image


def rendered_colours(page: Path, workdir: Path, window: str) -> Counter[tuple[int, int, int]]:
    """Pixels per RGB colour of `page` drawn by headless Chromium in a `window` ("WxH") window
    (its profile and screenshot go under `workdir`)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "headless Chromium is needed (`apt-get install chromium`; .ci/run does it)"
    screenshot = workdir / "screenshot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={workdir / 'profile'}", f"--screenshot={screenshot}",
                    f"--window-size={window}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    with Image.open(screenshot) as image:
        return Counter({colour: count for count, colour
                        in image.convert("RGB").getcolors(maxcolors=1 << 24) or []})
