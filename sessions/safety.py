"""The safety aid: open answers that may signal a crisis are flagged to the facilitator only.

The phrases are a starting list, not a diagnosis tool: a facilitator's own judgement comes first.
Set ATTUNE_CRISIS_PHRASES_FILE to a file of your own (one phrase a line, # for comments).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from django.conf import settings


@cache
def _pattern(path: str) -> re.Pattern[str] | None:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    phrases = [
        line.strip().casefold() for line in lines if line.strip() and not line.startswith("#")
    ]
    if not phrases:
        return None
    # Whole words only: "die" must not match "diet".
    return re.compile(r"\b(?:" + "|".join(re.escape(phrase) for phrase in phrases) + r")\b")


def needs_care(text: str) -> bool:
    pattern = _pattern(settings.ATTUNE_CRISIS_PHRASES_FILE)
    # Phones type curly apostrophes ("can\u2019t") where the list has straight ones.
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    return bool(pattern and pattern.search(" ".join(text.casefold().split())))
