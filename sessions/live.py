"""The live regions of a session: render each partial once, push it to every open socket.

Each region is one partial template, used for the page render and for the WebSocket push; htmx's
ws extension swaps it in by id. Pushes are scheduled with transaction.on_commit so that no
client ever sees data that could still roll back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.template.loader import render_to_string

from .aggregation import Result, profile, summarize
from .models import Activity, Answer, Participant, Session


def control_group(session_id: int) -> str:
    return f"session-{session_id}-control"


def projector_group(session_id: int) -> str:
    return f"session-{session_id}-projector"


def participants_group(session_id: int) -> str:
    return f"session-{session_id}-participants"


def current_result(session: Session) -> Result | None:
    activity = session.current_activity
    if activity is None or not activity.takes_answers:
        return None
    return summarize(activity, session.anonymity_threshold)


def live_context(session: Session) -> dict:
    """What the control view and the projector show of the running session."""
    activity = session.current_activity
    return {
        "session": session,
        "activity": activity,
        "result": current_result(session),
        "joined": session.joined_count(),
        "present": session.present_count(),
        **_step_context(session),
        # For the control view only: the partial for the projector never shows these.
        "next_activity": (
            session.activities.filter(position__gt=activity.position).first() if activity else None
        ),
        "group_sizes": (
            sorted(Counter(activity.pairs.values_list("group", flat=True)).values())
            if activity and activity.kind == Activity.Kind.PAIR_ROUND
            else []
        ),
        "support_step": session.support_step(),
        "profile": profile(activity.profile_scales(), session.anonymity_threshold)
        if activity
        else [],
    }


def _step_context(session: Session) -> dict:
    """What every screen needs to show a countdown or the breathing pacer in step."""
    return {
        "timer_remaining": session.timer_remaining_seconds(),
        "pacer_elapsed": session.seconds_since_opened(),
    }


def render_control_live(context: dict) -> str:
    return render_to_string("sessions/partials/control_live.html", context)


def render_control_agenda(session: Session) -> str:
    return render_to_string(
        "sessions/partials/control_agenda.html",
        {"session": session, "activities": session.activities_in_order()},
    )


def render_projector_stage(context: dict) -> str:
    return render_to_string("sessions/partials/projector_stage.html", context)


def phone_context(participant: Participant) -> dict:
    session = Session.objects.select_related("current_activity").get(pk=participant.session_id)
    activity = session.current_activity
    answer = (
        Answer.objects.filter(activity=activity, participant=participant).first()
        if activity
        else None
    )
    return {
        "participant": participant,
        "session": session,
        "activity": activity,
        "answer": answer,
        "group": (
            activity.group_of(participant)
            if activity and activity.kind == Activity.Kind.PAIR_ROUND
            else None
        ),
        **_step_context(session),
    }


def render_phone_stage(participant: Participant) -> str:
    return render_to_string("sessions/partials/phone_stage.html", phone_context(participant))


def render_notice(message: str, *, level: str = "error") -> str:
    return render_to_string("sessions/partials/notice.html", {"message": message, "level": level})


def _send(group: str, message: dict) -> None:
    async_to_sync(get_channel_layer().group_send)(group, message)


def _load(session_id: int) -> Session:
    return Session.objects.select_related("current_activity").get(pk=session_id)


def _push_counts_and_results(session: Session) -> None:
    context = live_context(session)
    _send(control_group(session.pk), {"type": "html.push", "html": render_control_live(context)})
    _send(
        projector_group(session.pk), {"type": "html.push", "html": render_projector_stage(context)}
    )


def push_results(session_id: int) -> None:
    """Counts and results changed: refresh the control view and the projector."""
    _push_counts_and_results(_load(session_id))


def push_facilitator_views(session_id: int) -> None:
    """The facilitator changed something only their views show (agenda, settings, joining)."""
    session = _load(session_id)
    _push_counts_and_results(session)
    # The facilitator's action went through: clear any earlier error on the control view.
    html = render_notice("") + render_control_agenda(session)
    _send(control_group(session_id), {"type": "html.push", "html": html})


def push_session(session_id: int) -> None:
    """What phones show changed too (open activity, answer lock, end): refresh every view."""
    push_facilitator_views(session_id)
    # Each phone shows its own answer, so each phone's consumer renders its own stage. Pushed
    # only when the phone's view really changed: a re-render would wipe a half-typed answer.
    _send(participants_group(session_id), {"type": "phone.refresh"})


def after_commit(push: Callable[[int], None], session_id: int) -> None:
    """Run `push` for the session once the current transaction has committed.

    Robust: the data is committed by then, so a failed push (a channel layer hiccup) is logged
    rather than turned into an error for the person who made the change.
    """
    transaction.on_commit(lambda: push(session_id), robust=True)
