"""Clean text typed by participants before it is stored."""

import unicodedata
from bisect import bisect_right

# Characters that reorder or hide text (bidi overrides, zero-width joiners outside emoji, BOM) or
# control it.
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Co", "Cs"}
_COMBINING_CATEGORIES = {"Mn", "Mc", "Me"}
# Accents stack two or three deep in real writing; dozens ("Zalgo" text) spill over other lines.
MAX_COMBINING_MARKS = 4

# The zero-width joiner glues emoji into one picture: 👩 ZWJ ❤️ ZWJ 👨 is a couple, 🏳️ ZWJ 🌈 the
# rainbow flag. It is kept between two emoji alone (any two, even a pair no font joins, which then
# shows as the two). Elsewhere it is dropped, as before, with the other invisible characters:
# it can hide inside a word, though Persian and the scripts of India use it (and the non-joiner)
# in ordinary writing, which loses them here. The tag characters of the England, Scotland and
# Wales flags go too: those show as a black flag.
_ZERO_WIDTH_JOINER = "\u200d"
# What may stand between an emoji and its joiner: the variation selector that asks for the
# coloured form (U+FE0F) and the skin tones (U+1F3FB to U+1F3FF).
_EMOJI_MODIFIERS = frozenset("\ufe0f\U0001f3fb\U0001f3fc\U0001f3fd\U0001f3fe\U0001f3ff")
# Unicode's Extended_Pictographic property (emoji-data.txt), which unicodedata does not offer: the
# characters a joiner may join. Blocks kept for future emoji are in it already. Pairs of first and
# last code point.
_PICTOGRAPHIC_RANGES = (
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122),
    (0x2139, 0x2139), (0x2194, 0x2199), (0x21A9, 0x21AA), (0x231A, 0x231B), (0x2328, 0x2328),
    (0x2388, 0x2388), (0x23CF, 0x23CF), (0x23E9, 0x23F3), (0x23F8, 0x23FA), (0x24C2, 0x24C2),
    (0x25AA, 0x25AB), (0x25B6, 0x25B6), (0x25C0, 0x25C0), (0x25FB, 0x25FE), (0x2600, 0x2605),
    (0x2607, 0x2612), (0x2614, 0x2685), (0x2690, 0x2705), (0x2708, 0x2712), (0x2714, 0x2714),
    (0x2716, 0x2716), (0x271D, 0x271D), (0x2721, 0x2721), (0x2728, 0x2728), (0x2733, 0x2734),
    (0x2744, 0x2744), (0x2747, 0x2747), (0x274C, 0x274C), (0x274E, 0x274E), (0x2753, 0x2755),
    (0x2757, 0x2757), (0x2763, 0x2767), (0x2795, 0x2797), (0x27A1, 0x27A1), (0x27B0, 0x27B0),
    (0x27BF, 0x27BF), (0x2934, 0x2935), (0x2B05, 0x2B07), (0x2B1B, 0x2B1C), (0x2B50, 0x2B50),
    (0x2B55, 0x2B55), (0x3030, 0x3030), (0x303D, 0x303D), (0x3297, 0x3297), (0x3299, 0x3299),
    (0x1F000, 0x1F0FF), (0x1F10D, 0x1F10F), (0x1F12F, 0x1F12F), (0x1F16C, 0x1F171),
    (0x1F17E, 0x1F17F), (0x1F18E, 0x1F18E), (0x1F191, 0x1F19A), (0x1F1AD, 0x1F1E5),
    (0x1F201, 0x1F20F), (0x1F21A, 0x1F21A), (0x1F22F, 0x1F22F), (0x1F232, 0x1F23A),
    (0x1F23C, 0x1F23F), (0x1F249, 0x1F3FA), (0x1F400, 0x1F53D), (0x1F546, 0x1F64F),
    (0x1F680, 0x1F6FF), (0x1F774, 0x1F77F), (0x1F7D5, 0x1F7FF), (0x1F80C, 0x1F80F),
    (0x1F848, 0x1F84F), (0x1F85A, 0x1F85F), (0x1F888, 0x1F88F), (0x1F8AE, 0x1F8FF),
    (0x1F90C, 0x1F93A), (0x1F93C, 0x1F945), (0x1F947, 0x1FAFF), (0x1FC00, 0x1FFFD),
)  # fmt: skip
_PICTOGRAPHIC_STARTS = [first for first, _ in _PICTOGRAPHIC_RANGES]


def clean_text(value: str, *, max_length: int, keep_newlines: bool = False) -> str:
    """NFC-normalise, drop control and invisible formatting characters, cap stacked accents,
    trim, cap the length.

    A zero-width joiner stays only where it joins two emoji into one (👩‍❤️‍👨, 🏳️‍🌈).
    """
    value = unicodedata.normalize("NFC", value)
    kept = []
    marks = 0  # combining marks on the current character
    for position, char in enumerate(value):
        category = unicodedata.category(char)
        marks = marks + 1 if category in _COMBINING_CATEGORIES else 0
        if keep_newlines and char == "\n":
            kept.append(char)
        elif char.isspace():
            kept.append(" ")  # tabs, stray line breaks and exotic spaces separate words
        elif char == _ZERO_WIDTH_JOINER:
            if _joins_emoji(kept, value[position + 1 : position + 2]):
                kept.append(char)
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
    # Cut inside an emoji sequence, a joiner would be left joining nothing.
    return cleaned[:max_length].rstrip(_ZERO_WIDTH_JOINER)


def strip_punctuation(value: str) -> str:
    """Drop the punctuation around each word ("Hope!", "(hope)" and "¡esperanza!" become "Hope",
    "hope" and "esperanza") but not inside one ("self-care", "don't"). A word of punctuation
    alone ("!!!") goes, spaces are collapsed.

    Symbols stay: an emoji, "<3" or "C++" is the word itself.
    """
    words = []
    for word in value.split():
        start, end = 0, len(word)
        while start < end and _is_punctuation(word[start]) and not _keycap(word, start):
            start += 1
        while end > start and _is_punctuation(word[end - 1]):
            end -= 1
        if start < end:
            words.append(word[start:end])
    return " ".join(words)


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char).startswith("P")


def _keycap(word: str, index: int) -> bool:
    """Whether the character at `index` starts a keycap emoji (#️⃣, *️⃣): it is the emoji."""
    return word[index + 1 : index + 2] in ("\ufe0f", "\u20e3")


def _joins_emoji(before: list[str], after: str) -> bool:
    """Whether a zero-width joiner between the characters kept `before` it and the character
    `after` it glues two emoji (an emoji, its variation selector or skin tone, the joiner, an
    emoji: Unicode's rule GB11 for what one picture is)."""
    if not after or not _is_pictographic(after):
        return False
    index = len(before) - 1
    while index >= 0 and before[index] in _EMOJI_MODIFIERS:
        index -= 1
    return index >= 0 and _is_pictographic(before[index])


def _is_pictographic(char: str) -> bool:
    code = ord(char)
    index = bisect_right(_PICTOGRAPHIC_STARTS, code) - 1
    return index >= 0 and code <= _PICTOGRAPHIC_RANGES[index][1]
