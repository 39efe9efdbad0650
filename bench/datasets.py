"""`bench.datasets.<name>` resolves to the top-level `datasets/<name>.py` plugin folder."""

from pathlib import Path

__path__ = [str(Path(__file__).resolve().parent.parent / "datasets")]
