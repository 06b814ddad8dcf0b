from pathlib import Path

from stt_cli.schemas import DEFAULT_DIR, render

ROOT = Path(__file__).resolve().parents[2]


def test_published_schemas_match_the_models() -> None:
    for filename, text in render().items():
        published = ROOT / DEFAULT_DIR / filename
        assert published.exists(), f"{published} missing: run `stt schemas`"
        assert published.read_text() == text, f"{published} is stale: run `stt schemas`"
