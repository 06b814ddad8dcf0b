from faster_whisper.tokenizer import _LANGUAGE_CODES

from stt_common.languages import WHISPER_LANGUAGES


def test_language_list_matches_faster_whisper() -> None:
    assert frozenset(_LANGUAGE_CODES) == WHISPER_LANGUAGES
