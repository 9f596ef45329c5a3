from datetime import timedelta

from django import template

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
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min"
    return f"{seconds} s"


@register.filter
def approx_minutes(seconds: int | None) -> str:
    """A suggested time: 30 -> "30 s", 90 -> "1.5 min", 300 -> "5 min"."""
    if not seconds:
        return ""
    if seconds < 60:
        return f"{seconds} s"
    return f"{round(seconds / 60, 1):g} min"


@register.filter
def kind_label(kind: str) -> str:
    """ "pair_round" -> "Pair round"."""
    return Activity.Kind(kind).label if kind in Activity.Kind.values else kind
