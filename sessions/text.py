"""Clean text typed by participants before it is stored."""

import unicodedata

# Characters that reorder or hide text (bidi overrides, zero-width joiners, BOM) or control it.
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Co", "Cs"}
_COMBINING_CATEGORIES = {"Mn", "Mc", "Me"}
# Accents stack two or three deep in real writing; dozens ("Zalgo" text) spill over other lines.
MAX_COMBINING_MARKS = 4


def clean_text(value: str, *, max_length: int, keep_newlines: bool = False) -> str:
    """NFC-normalise, drop control and invisible formatting characters, cap stacked accents,
    trim, cap the length."""
    value = unicodedata.normalize("NFC", value)
    kept = []
    marks = 0  # combining marks on the current character
    for char in value:
        category = unicodedata.category(char)
        marks = marks + 1 if category in _COMBINING_CATEGORIES else 0
        if keep_newlines and char == "\n":
            kept.append(char)
        elif char.isspace():
            kept.append(" ")  # tabs, stray line breaks and exotic spaces separate words
        elif category not in _INVISIBLE_CATEGORIES and marks <= MAX_COMBINING_MARKS:
            kept.append(char)
    cleaned = "".join(kept)
    if keep_newlines:
        lines = [" ".join(line.split()) for line in cleaned.split("\n")]
        cleaned = "\n".join(lines).strip()
        while "\n\n\n" in cleaned:
            cleaned = cleaned.replace("\n\n\n", "\n\n")
    else:
        cleaned = " ".join(cleaned.split())
    return cleaned[:max_length]
