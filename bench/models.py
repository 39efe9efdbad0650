"""`bench.models.<name>` resolves to the top-level `models/<name>.py` plugin folder."""

from pathlib import Path

__path__ = [str(Path(__file__).resolve().parent.parent / "models")]
