"""The safety aid: open answers that may signal a crisis are flagged to the facilitator only.

The phrases are a starting list, not a diagnosis tool: a facilitator's own judgement comes first.
Set ATTUNE_CRISIS_PHRASES_FILE to a file of your own (one phrase a line, # for comments).
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from pathlib import Path

from django.conf import settings


def _plain(text: str) -> str:
    """Lower case without accents, spacing or curly apostrophes, as the phrases are matched:
    phones leave accents out as often as they put them in ("autolesion", "autolesión")."""
    # Phones type curly apostrophes ("can\u2019t") where the list has straight ones.
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())


@cache
def _pattern(path: str) -> re.Pattern[str] | None:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    # Every language's phrases, whatever the session's: a phone may write in its own.
    phrases = [_plain(line) for line in lines if line.strip() and not line.startswith("#")]
    if not phrases:
        return None
    # Whole words only: "die" must not match "diet".
    return re.compile(r"\b(?:" + "|".join(re.escape(phrase) for phrase in phrases) + r")\b")


def needs_care(text: str) -> bool:
    pattern = _pattern(settings.ATTUNE_CRISIS_PHRASES_FILE)
    return bool(pattern and pattern.search(_plain(text)))
