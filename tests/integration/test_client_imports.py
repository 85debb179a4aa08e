"""The Python client in a fresh interpreter: what works without numpy, Pillow or the server."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path


def test_it_works_without_numpy_pillow_or_the_server(tmp_path: Path) -> None:
    """In a process where numpy, PIL and the server cannot be imported, everything that does
    not need them works, and an array-free image call imports neither."""
    script = """
import sys
for blocked in ("numpy", "PIL", "app", "fastapi", "pydantic"):
    sys.modules[blocked] = None  # import raises ImportError
import httpx, json
from synergy_client import SynergyClient
seen = []
def handler(request):
    seen.append(json.loads(request.content))
    return httpx.Response(200, json={"model": "m", "version": 1, "predictions": [
        {"label": "a", "probabilities": {"a": 1.0}}]})
with SynergyClient(transport=httpx.MockTransport(handler)) as client:
    client.predict("iris-knn", [[1, 2, 3, 4]])
    client.predict_text("imdb-sentiment", "fine")
    client.predict_image("mnist-cnn", sys.argv[1])
    client.predict_image("mnist-cnn", b"raw png bytes")
print(len(seen), seen[2]["instances"][0]["b64"])
"""
    image = tmp_path / "digit.png"
    image.write_bytes(b"not really a png")
    result = subprocess.run(
        [sys.executable, "-c", script, str(image)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,  # not the repository root: `app` must not be importable by accident
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["4", base64.b64encode(b"not really a png").decode()]


def test_an_array_without_pillow_goes_as_a_grid_or_says_what_to_install() -> None:
    script = """
import sys
sys.modules["PIL"] = None
import numpy as np
from synergy_client.inputs import image_instance
assert image_instance(np.zeros((28, 28), dtype=np.uint8)) == [[0] * 28] * 28
try:
    image_instance(np.zeros((30, 40), dtype=np.uint8))
except ImportError as error:
    print(error)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"encoding a (30, 40) array to PNG needs Pillow: {sys.executable} -m pip install "
        "'pillow>=10.4'"
    )
