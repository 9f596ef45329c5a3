import re
from datetime import datetime, timedelta
from urllib.parse import quote

from django import template
from django.utils import formats
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext

from sessions.models import Activity

register = template.Library()


@register.filter
def clock(seconds: int | None) -> str:
    """90 -> "1:30", for countdowns."""
    if seconds is None:
        return ""
    minutes, rest = divmod(max(0, int(seconds)), 60)
    return f"{minutes}:{rest:02d}"


@register.filter
def duration(value: timedelta | None) -> str:
    """A session's length in words: "1 h 05 min", "12 min", "40 s"."""
    if value is None:
        return "–"
    total = int(value.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return gettext("%(hours)d h %(minutes)02d min") % {"hours": hours, "minutes": minutes}
    if minutes:
        return gettext("%(minutes)d min") % {"minutes": minutes}
    return gettext("%(seconds)d s") % {"seconds": seconds}


@register.filter
def add_days(moment: datetime | None, days: int) -> datetime | None:
    return moment + timedelta(days=days) if moment else None


@register.filter
def signed(number: float | None) -> str:
    """A change with its sign: 1.5 -> "+1.5", 0 -> "±0", and a true minus sign below 0."""
    if number is None:
        return "–"
    if number == 0:
        return "±0"
    return f"+{_decimal(number)}" if number > 0 else f"−{_decimal(-number)}"


def _decimal(number: float) -> str:
    """1.5 -> "1.5", or "1,5" where the language writes a decimal comma."""
    return f"{number:g}".replace(".", formats.get_format("DECIMAL_SEPARATOR"))


@register.filter
def approx_minutes(seconds: int | None) -> str:
    """A suggested time: 30 -> "30 s", 90 -> "1.5 min", 300 -> "5 min"."""
    if not seconds:
        return ""
    if seconds < 60:
        return gettext("%(seconds)d s") % {"seconds": seconds}
    return gettext("%(minutes)s min") % {"minutes": _decimal(round(seconds / 60, 1))}


@register.filter
def kind_label(kind: str) -> str:
    """ "pair_round" -> "Pair round"."""
    return Activity.Kind(kind).label if kind in Activity.Kind.values else kind


# What a support step's reader can tap: a web address, an email address, a phone number.
CONTACT = re.compile(
    r"(?P<web>(?:https?://|www\.)[^\s<>\"]*[^\s<>\".,;:!?)\]])"
    r"|(?P<mail>(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+)"
    # Groups of digits, one space or hyphen apart, after a country or area code in brackets
    # and with a home-only "(0)": "116 123", "+44 (0)800 111 222", "(555) 123-4567". Never on
    # into what follows: "024 (24 hours)" is 024, "112 - day and night" is 112.
    r"|(?P<phone>(?<![\w/.:@)+-])\+?(?:\(\d{1,4}\)[ -]?)?\d+(?:[ -]\d+| ?\(0\) ?\d+)*"
    r"(?![\w/:@]|[.,]\d))"
)


# Just before a number: it takes a text message, not a call ("text SHOUT to 85258", "text
# 07700 900456", "SMS al 717", "envía AYUDA al 717"), with the word to send when there is one:
# in capitals, as such words are written, perhaps in quotes.
TEXT_TO = re.compile(
    r"\b(?:[Tt]ext|TEXT|SMS|sms|[Ee]nv[ií]a|ENV[IÍ]A)(?:\s+(?:message|mensaje))?"
    r"(?:\s+[\"“'‘]?(?P<word>[A-Z0-9ÁÉÍÓÚÑ]{2,})[\"”'’]?)?"
    r"(?:\s+(?:to|TO|al|AL))?\s*$"
)
# Anywhere before it, since the last link: a call works too ("call or text 988", "Phone/text
# 988", "Llama o envía un SMS al 024"), and a call is what a tap then makes.
CALL = re.compile(r"(?i)\b(?:call|phone|ring|llama|llámanos|llamar)\b")


def _dialled(number: str) -> str | None:
    """The number to dial for `number` as written, or None when it is no phone number: fewer
    than three digits ("Step 2") or more than fifteen, a year ("2027"), or a range of small
    numbers ("9-17", "18-25")."""
    if number.startswith("+"):
        number = number.replace("(0)", "")  # "+44 (0)116": the 0 is dialled only at home
    digits = re.sub(r"\D", "", number)
    if not 3 <= len(digits) <= 15 or re.fullmatch(r"(19|20)\d\d|\d{1,2}-\d{1,2}", number):
        return None
    return ("+" if number.startswith("+") else "") + digits


@register.filter
def contact_links(text: str) -> str:
    """`text` with its web addresses, email addresses and phone numbers made into links, so
    that a phone can open or call them with a tap; everything else escaped."""
    parts, last = [], 0
    for match in CONTACT.finditer(text):
        start, written = match.start(), match.group()
        if match["web"]:
            href = written if written.startswith(("http://", "https://")) else f"https://{written}"
            link = format_html(
                '<a href="{}" target="_blank" rel="noopener noreferrer">{}</a>', href, written
            )
        elif match["mail"]:
            link = format_html('<a href="mailto:{}">{}</a>', written, written)
        elif dialled := _dialled(written):
            before = text[last:start]
            if (texted := TEXT_TO.search(before)) and not CALL.search(before):
                word = texted["word"]
                body = f"?&body={quote(word)}" if word else ""
                link = format_html('<a href="sms:{}{}">{}</a>', dialled, body, written)
            else:
                link = format_html('<a href="tel:{}">{}</a>', dialled, written)
        else:
            continue
        parts += [text[last:start], link]
        last = start + len(written)
    parts.append(text[last:])
    return format_html_join("", "{}", ((part,) for part in parts))
