"""Clean text typed by participants before it is stored."""

import unicodedata

# Characters that reorder or hide text (bidi overrides, zero-width joiners, BOM) or control it.
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Co", "Cs"}


def clean_text(value: str, *, max_length: int, keep_newlines: bool = False) -> str:
    """NFC-normalise, drop control and invisible formatting characters, trim, cap the length."""
    value = unicodedata.normalize("NFC", value)
    kept = []
    for char in value:
        if keep_newlines and char == "\n":
            kept.append(char)
        elif char.isspace():
            kept.append(" ")  # tabs, stray line breaks and exotic spaces separate words
        elif unicodedata.category(char) not in _INVISIBLE_CATEGORIES:
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
