from __future__ import annotations

import io
import secrets
import time
from typing import Any

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.html import escape
from django.utils.translation import gettext, gettext_lazy, ngettext
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from . import live, throttle
from .forms import (
    ActivityForm,
    FacilitatorSettingsForm,
    JoinForm,
    NewSessionForm,
    NotesForm,
    PlanForm,
    SessionForm,
    SignupForm,
    ThrottledAuthenticationForm,
    session_language_for,
)
from .models import (
    ActionRefused,
    Activity,
    Exercise,
    FacilitatorSettings,
    Group,
    Member,
    Participant,
    Plan,
    Session,
    forget_sign_ins,
    normalize_join_code,
    parse_id,
    participant_cookie,
    participant_token,
    planned_seconds,
)
from .review import review

# Participants ---------------------------------------------------------------------------

TOO_MANY_CODES = gettext_lazy(
    "Too many tries with codes that do not exist. Wait a minute, then try again."
)


def join(request: HttpRequest) -> HttpResponse:
    """The phone's front door: type the code shown on the screen."""
    if request.method == "POST" and _guessing_codes(request):
        return _refused_join(request, request.POST.get("code", ""), TOO_MANY_CODES, status=429)
    form = JoinForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        code = form.cleaned_data["code"]
        refusal = Session.objects.join_refusal_for_code(code)
        if refusal is None or _participant_from_cookie(request, code):
            return redirect("participant_entry", code=code)
        _count_if_unknown(request, code)
        form.add_error("code", refusal)
    return render(request, "sessions/join.html", {"form": form}, status=400 if form.errors else 200)


def participant_entry(request: HttpRequest, code: str) -> HttpResponse:
    """Where the QR code leads: the consent screen the first time, the live phone view after."""
    code = normalize_join_code(code)
    participant = _participant_from_cookie(request, code)
    if participant is not None:
        return _phone_page(request, participant)

    if _guessing_codes(request):
        return _refused_join(request, code, TOO_MANY_CODES, status=429)
    if request.method == "GET" and (page := _kept_consent_page(request, code)) is not None:
        return page
    session, refusal = Session.objects.joining(code)
    if session is None or refusal is not None:
        _count_if_unknown(request, code)
        return _refused_join(request, code, refusal, status=404)
    group = session.group if session.group_id and session.group.keep_pseudonyms else None
    member_cookie = f"{settings.ATTUNE_MEMBER_COOKIE}_{group.pk}" if group else ""
    member = Member.for_phone(request.COOKIES.get(member_cookie), group) if group else None
    if request.method == "POST":
        keep_nickname = group is not None and request.POST.get("keep_nickname") == "on"
        try:
            participant, token = session.add_participant(member if keep_nickname else None)
        except ActionRefused as refusal_error:
            return _refused_join(request, code, str(refusal_error))
        cookies = [(participant_cookie(code), token, settings.ATTUNE_PARTICIPANT_COOKIE_AGE)]
        if keep_nickname and member is None:
            _member, member_token = Member.enrol(participant)
            cookies.append((member_cookie, member_token, settings.ATTUNE_MEMBER_COOKIE_AGE))
        # A phone with scripts posts this form with htmx and gets its live view at once: one
        # request and one round trip on the room's Wi-Fi fewer than following a redirect.
        # Without scripts, the redirect keeps a reload from posting the form again.
        response = (
            _phone_page(request, participant, just_joined=True)
            if request.htmx
            else redirect("participant_entry", code=code)
        )
        for name, value, max_age in cookies:
            _set_phone_cookie(response, name, value, max_age)
        return response
    if group is not None:  # the page depends on this phone's membership
        return render(
            request,
            "sessions/consent.html",
            {"session": session, "group": group, "member": member},
        )
    return _consent_page(request, code, session)


# A room scanning the QR code together asks for the same consent page a hundred times in a
# second: it is rendered once per language and kept for a moment, and each phone gets a copy
# with its own CSRF token. A change to the session drops it at once in this process (and again
# at the commit, in case a request read the row before it), and the other processes' copies are
# gone within CONSENT_PAGE_SECONDS. The form's answer reads the session afresh, so a phone that
# got a copy just before joins were locked is refused there. Rendered without the request,
# the page shows no pending message ("Saved.") of a signed-in facilitator trying the code: it
# waits for their next page.
CONSENT_PAGE_SECONDS = 2.0
_CSRF_SLOT = secrets.token_hex(16)  # where each copy gets its phone's token
_consent_pages: dict[tuple[str, str], tuple[float, str]] = {}


def _kept_consent_page(request: HttpRequest, code: str) -> HttpResponse | None:
    kept = _consent_pages.get((code, translation.get_language()))
    if kept is None or kept[0] < time.monotonic():
        return None
    return _with_csrf_token(request, kept[1])


def _consent_page(request: HttpRequest, code: str, session: Session) -> HttpResponse:
    page = render_to_string("sessions/consent.html", {"session": session, "csrf_token": _CSRF_SLOT})
    _consent_pages[(code, translation.get_language())] = (
        time.monotonic() + CONSENT_PAGE_SECONDS,
        page,
    )
    return _with_csrf_token(request, page)


def _with_csrf_token(request: HttpRequest, page: str) -> HttpResponse:
    return HttpResponse(page.replace(_CSRF_SLOT, get_token(request)))


# Connected with the views: until they are imported, no page is kept.
@receiver(post_save, sender=Session)
@receiver(post_delete, sender=Session)
@receiver(post_save, sender=Group)  # whether its sessions' pages are kept at all
def _forget_consent_pages(sender: Any, **kwargs: Any) -> None:
    _consent_pages.clear()
    transaction.on_commit(_consent_pages.clear)


def _phone_page(
    request: HttpRequest, participant: Participant, just_joined: bool = False
) -> HttpResponse:
    """The live phone view, which opens the phone's socket."""
    return render(
        request,
        "sessions/phone.html",
        {
            **live.phone_context(participant, session=participant.session, just_joined=just_joined),
            "own_trend": participant.member.own_trend() if participant.member_id else None,
        },
    )


def _set_phone_cookie(response: HttpResponse, name: str, token: str, max_age: int) -> None:
    response.set_cookie(
        name,
        token,
        max_age=max_age,
        httponly=True,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
    )


def _participant_from_cookie(request: HttpRequest, code: str) -> Participant | None:
    token = participant_token(request.COOKIES, code)
    # With what the phone page shows, in the same query.
    return Participant.objects.select_related("session__current_activity").for_phone(token, code)


def _refused_join(request: HttpRequest, code: str, refusal: str, status: int = 200) -> HttpResponse:
    form = JoinForm(initial={"code": code})
    return render(request, "sessions/join.html", {"form": form, "refusal": refusal}, status=status)


def _guessing_codes(request: HttpRequest) -> bool:
    """Whether this client has tried too many unknown codes: it is then not told about any."""
    return throttle.UNKNOWN_JOIN_CODES.is_blocked(throttle.client_address(request))


def _count_if_unknown(request: HttpRequest, code: str) -> None:
    # Only codes that no session has count: a few typos are forgiven, a run of them is
    # guessing. An ended or closed session's code is real, and phones may retry it until it
    # opens again.
    if not Session.objects.with_join_code(code).exists():
        throttle.UNKNOWN_JOIN_CODES.hit(throttle.client_address(request))


# Facilitator accounts ---------------------------------------------------------------------


def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)
        return redirect("dashboard")
    return render(request, "registration/signup.html", {"form": form})


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return _render_dashboard(request, NewSessionForm())


def _render_dashboard(
    request: HttpRequest, form: NewSessionForm, status: int = 200
) -> HttpResponse:
    sessions = list(Session.objects.owned_by(request.user).select_related("group"))
    return render(
        request,
        "sessions/dashboard.html",
        {
            "live_sessions": [s for s in sessions if s.is_live],
            "draft_sessions": [s for s in sessions if s.status == Session.Status.DRAFT],
            "ended_sessions": [s for s in sessions if s.is_ended],
            "plans": Plan.objects.available_to(request.user),
            "form": form,
        },
        status=status,
    )


def _get_own_session(request: HttpRequest, session_id: int) -> Session:
    # Another facilitator's session is a 404, not a 403: its existence is not theirs to know.
    return get_object_or_404(Session.objects.owned_by(request.user), pk=session_id)


def _get_own_agenda(request: HttpRequest, session_id: int) -> Session:
    """A session of one's own whose agenda may still change: not once it has ended, so that its
    summary stays true to what the room was asked."""
    session = _get_own_session(request, session_id)
    if session.is_ended:
        raise PermissionDenied(
            gettext("This session has ended, so its agenda stays as it was run.")
        )
    return session


def _get_own_activity(request: HttpRequest, session_id: int, activity_id: int) -> Activity:
    """An activity to change, on an agenda that may still change."""
    return get_object_or_404(_get_own_agenda(request, session_id).activities, pk=activity_id)


# Building a session -----------------------------------------------------------------------


@login_required
@require_POST
def session_create(request: HttpRequest) -> HttpResponse:
    form = NewSessionForm(request.POST)
    if not form.is_valid():
        return _render_dashboard(request, form, status=400)
    session = form.save(commit=False)
    session.facilitator = request.user
    session.save()
    return redirect("session_edit", session_id=session.pk)


@login_required
def session_edit(request: HttpRequest, session_id: int) -> HttpResponse:
    session = _get_own_session(request, session_id)
    form = SessionForm(request.POST or None, instance=session)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            form.save()
            if "language" in form.changed_data and session.status == Session.Status.DRAFT:
                _translated(request, session, form.initial["language"])
            if session.is_live:
                live.after_commit(live.push_facilitator_views, session.pk)
        messages.success(request, gettext("Settings saved."))
        return redirect("session_edit", session_id=session.pk)
    if form.is_bound:  # checking the form changed the session it holds: show the one saved
        session.refresh_from_db()
    return render(
        request,
        "sessions/session_edit.html",
        {
            "session": session,
            "form": form,
            "exercises": Exercise.objects.latest_versions(),
            **_agenda_context(session, places=True),
        },
    )


def _translated(request: HttpRequest, session: Session, from_language: str) -> None:
    """A draft's language changed: its library steps follow, but those the facilitator edited."""
    changed, kept = session.translate_library_steps(from_language)
    language = session.get_language_display()
    if changed:
        messages.info(
            request,
            ngettext(
                "%(count)d step from the library is now in %(language)s.",
                "%(count)d steps from the library are now in %(language)s.",
                changed,
            )
            % {"count": changed, "language": language},
        )
    if kept:
        messages.warning(
            request,
            ngettext(
                "%(count)d step you edited keeps its words: change it to %(language)s yourself.",
                "%(count)d steps you edited keep their words: change them to %(language)s "
                "yourself.",
                kept,
            )
            % {"count": kept, "language": language},
        )


def _agenda_context(
    session: Session, new_form: ActivityForm | None = None, *, places: bool = False
) -> dict:
    """The agenda editor's; `places`: with the library's place picker's."""
    activities = session.activities_in_order()
    blocks = session.exercise_blocks(activities)
    context = {
        "session": session,
        "activities": activities,
        # Each step, and for the first of an exercise of several steps (which moves it as
        # one): how many steps the exercise has, and whether it is at the top or the bottom
        # already.
        "rows": [
            (step, (len(block), number == 0, number == len(blocks) - 1))
            if at == 0 and len(block) > 1
            else (step, None)
            for number, block in enumerate(blocks)
            for at, step in enumerate(block)
        ],
        "gaps": session.steps_with_gaps(activities),
        "planned_seconds": planned_seconds(activities),
        "new_form": new_form or ActivityForm(language=session.language),
    }
    if places:
        context["places"] = session.places_between_exercises(activities)
    return context


def _agenda_response(
    request: HttpRequest,
    session: Session,
    *,
    shown_on_phones: bool,
    added: tuple[Exercise, list[Activity]] | None = None,
    before: Activity | None = None,
) -> HttpResponse:
    """After an agenda change: the editor for htmx, a redirect otherwise; live views follow.

    Phones are refreshed only when the activity they show changed: a refresh would wipe a
    half-typed answer.
    """
    if session.is_live:
        push = live.push_session if shown_on_phones else live.push_facilitator_views
        live.after_commit(push, session.pk)
    if request.htmx:
        # The library's place picker comes too, with the agenda's steps as they are now.
        context = {
            **_agenda_context(session, places=True),
            "before": before,
            "place_picker": True,  # sent out of band, beside the library
        }
        if added:
            context["added_from"], context["added"] = added
        response = render(request, "sessions/partials/agenda_editor.html", context)
        # The edit form targets its own row; the whole editor comes back.
        return reswap(retarget(response, "#agenda-editor"), "outerHTML")
    return redirect("session_edit", session_id=session.pk)


@login_required
def activity_new_form(request: HttpRequest, session_id: int) -> HttpResponse:
    """The add-activity form for the kind picked in its select (htmx swaps it in)."""
    session = _get_own_agenda(request, session_id)
    # Keep what was typed as the prompt when the kind changes.
    form = ActivityForm(
        kind=request.GET.get("kind"),
        initial={"prompt": request.GET.get("prompt")},
        language=session.language,
    )
    return render(
        request, "sessions/partials/activity_new_form.html", {"session": session, "form": form}
    )


@login_required
@require_POST
def activity_add(request: HttpRequest, session_id: int) -> HttpResponse:
    session = _get_own_agenda(request, session_id)
    form = ActivityForm(request.POST, kind=request.POST.get("kind"), language=session.language)
    if not form.is_valid():
        return render(
            request,
            "sessions/partials/agenda_editor.html",
            _agenda_context(session, new_form=form),
            status=422 if request.htmx else 400,
        )
    activity = form.save(commit=False)
    activity.session = session
    activity.save()
    return _agenda_response(request, session, shown_on_phones=False)


@login_required
def activity_edit(request: HttpRequest, session_id: int, activity_id: int) -> HttpResponse:
    activity = _get_own_activity(request, session_id, activity_id)
    form = ActivityForm(request.POST or None, instance=activity, language=activity.session.language)
    if request.method == "POST" and form.is_valid():
        form.save()
        session = activity.session
        return _agenda_response(
            request, session, shown_on_phones=activity.pk == session.current_activity_id
        )
    return render(
        request,
        "sessions/partials/activity_edit_form.html",
        {"session": activity.session, "activity": activity, "form": form},
        status=422 if form.errors else 200,
    )


@login_required
@require_POST
def activity_move(request: HttpRequest, session_id: int, activity_id: int) -> HttpResponse:
    activity = _get_own_activity(request, session_id, activity_id)
    offset = {"up": -1, "down": 1}.get(request.POST.get("direction", ""))
    if offset is None:
        return HttpResponse(gettext("Direction must be up or down."), status=400)
    block = request.POST.get("block", "step")
    if block not in ("step", "exercise"):
        return HttpResponse(gettext("A move is of one step or of its whole exercise."), status=400)
    with transaction.atomic():
        activity.move(offset, whole_exercise=block == "exercise")
    return _agenda_response(request, activity.session, shown_on_phones=False)


@login_required
@require_POST
def activity_delete(request: HttpRequest, session_id: int, activity_id: int) -> HttpResponse:
    activity = _get_own_activity(request, session_id, activity_id)
    session = activity.session
    was_open = activity.pk == session.current_activity_id
    activity.delete()
    return _agenda_response(request, session, shown_on_phones=was_open)


# The exercise library and plans -----------------------------------------------------------


@login_required
def library(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "sessions/library.html",
        {
            "exercises": Exercise.objects.latest_versions(),
            "plans": Plan.objects.available_to(request.user),
        },
    )


@login_required
@require_POST
def exercise_add(request: HttpRequest, session_id: int, exercise_id: int) -> HttpResponse:
    session = _get_own_agenda(request, session_id)
    exercise = get_object_or_404(Exercise, pk=exercise_id)
    # Where the library's place picker says: before a step that starts an exercise, or at the end.
    wanted = parse_id(request.POST.get("before"))
    before = next((s for _, s in session.places_between_exercises() if s.pk == wanted), None)
    with transaction.atomic():
        added = session.add_steps(exercise.steps, source=exercise.label, before=before)
    # Told beside the button clicked too: the agenda is further up the page, out of sight.
    return _agenda_response(
        request, session, shown_on_phones=False, added=(exercise, added), before=before
    )


@login_required
@require_POST
def plan_use(request: HttpRequest, plan_id: int) -> HttpResponse:
    """One click: a new draft session with the plan's agenda, ready to edit."""
    plan = get_object_or_404(Plan.objects.available_to(request.user), pk=plan_id)
    session = Session.objects.create(
        facilitator=request.user,
        title=plan.title,
        # As a session created from the dashboard: in the language the facilitator reads.
        language=session_language_for(translation.get_language()),
    )
    session.add_steps(plan.steps)
    return redirect("session_edit", session_id=session.pk)


@login_required
@require_POST
def plan_save(request: HttpRequest, session_id: int) -> HttpResponse:
    session = _get_own_session(request, session_id)
    form = PlanForm(request.POST)
    if form.is_valid() and session.activities.exists():
        Plan.objects.create(
            owner=request.user,
            title=form.cleaned_data["title"],
            description=form.cleaned_data["description"],
            steps=session.agenda_as_steps(),
            duration_minutes=session.suggested_minutes(),
        )
        messages.success(
            request,
            gettext("Saved as your plan “%(title)s”.") % {"title": form.cleaned_data["title"]},
        )
    else:
        messages.error(
            request, gettext("Give the plan a title, and put at least one activity on the agenda.")
        )
    return redirect("session_edit", session_id=session.pk)


@login_required
@require_POST
def plan_delete(request: HttpRequest, plan_id: int) -> HttpResponse:
    # Library plans have no owner, so nobody can delete them here.
    plan = get_object_or_404(Plan, pk=plan_id, owner=request.user)
    plan.delete()
    if request.htmx:
        return HttpResponseClientRedirect(reverse("dashboard"))
    return redirect("dashboard")


# Running a session ------------------------------------------------------------------------


@login_required
@require_POST
def session_start(request: HttpRequest, session_id: int) -> HttpResponse:
    session = _get_own_session(request, session_id)
    gaps = session.steps_with_gaps()
    if gaps and session.status == Session.Status.DRAFT and "start_anyway" not in request.POST:
        # Told under the agenda, which lists them, beside "Start anyway".
        messages.error(
            request,
            gettext("Fill in the [bracketed] gaps first, or press “Start anyway” below the list."),
        )
        return redirect(f"{reverse('session_edit', args=[session.pk])}#gaps")
    session.start()
    if gaps:
        messages.warning(
            request,
            ngettext(
                "%(count)d step still has [bracketed] gaps, “%(prompt)s”: the projector and "
                "phones leave out those lines until you fill them in.",
                "%(count)d steps still have [bracketed] gaps, the first “%(prompt)s”: the "
                "projector and phones leave out those lines until you fill them in.",
                len(gaps),
            )
            % {"prompt": gaps[0].prompt, "count": len(gaps)},
        )
    if other := Session.objects.owned_by(request.user).joinable().exclude(pk=session.pk).first():
        # Often one left running from last week: its phones wait on it until it ends.
        messages.info(
            request,
            gettext(
                "Your session “%(title)s” is still live too. End it from its control view "
                "once it is over, so that its phones are told and its summary is ready."
            )
            % {"title": other.title},
        )
    return redirect("session_control", session_id=session.pk)


@login_required
@require_POST
def session_end(request: HttpRequest, session_id: int) -> HttpResponse:
    session = _get_own_session(request, session_id)
    with transaction.atomic():
        session.end()
        live.after_commit(live.push_session, session.pk)
    summary_url = reverse("session_summary", args=[session.pk])
    if request.htmx:
        return HttpResponseClientRedirect(summary_url)
    return redirect(summary_url)


def _join_url(request: HttpRequest, session: Session) -> str:
    path = reverse("participant_entry", args=[session.join_code])
    if settings.PUBLIC_URL:
        return settings.PUBLIC_URL + path
    return request.build_absolute_uri(path)


def _running_session(request: HttpRequest, session_id: int) -> Session | HttpResponse:
    session = _get_own_session(request, session_id)
    if session.status == Session.Status.DRAFT:
        return redirect("session_edit", session_id=session.pk)
    if session.is_ended:
        return redirect("session_summary", session_id=session.pk)
    return session


def _render_in_session_language(
    request: HttpRequest, session: Session, template: str, context: dict
) -> HttpResponse:
    """The control view and the projector speak the session's language, whatever the browser
    asks for, as their live pushes do (sessions/live.py)."""
    with translation.override(session.language):
        response = render(request, template, context)
    response.headers["Content-Language"] = session.language
    return response


@login_required
def session_control(request: HttpRequest, session_id: int) -> HttpResponse:
    session = _running_session(request, session_id)
    if isinstance(session, HttpResponse):
        return session
    session = live.read_for_render(session.pk)  # stamped, like every push of its live regions
    return _render_in_session_language(
        request,
        session,
        "sessions/control.html",
        {
            **live.live_context(session),
            "activities": session.activities_in_order(),
            "join_url": _join_url(request, session),
            "notes_form": NotesForm(instance=session),
        },
    )


@login_required
def session_projector(request: HttpRequest, session_id: int) -> HttpResponse:
    session = _running_session(request, session_id)
    if isinstance(session, HttpResponse):
        return session
    session = live.read_for_render(session.pk)  # stamped, like every push of its live regions
    join_url = _join_url(request, session)
    return _render_in_session_language(
        request,
        session,
        "sessions/projector.html",
        {
            **live.live_context(session),
            "join_url": join_url,
            # What people type: the address of the join page, without scheme or code.
            "join_site": join_url.split("://", 1)[-1].removesuffix(f"/join/{session.join_code}/"),
        },
    )


@login_required
def session_qr(request: HttpRequest, session_id: int) -> HttpResponse:
    session = _get_own_session(request, session_id)
    if not session.join_code:
        return HttpResponse(status=404)
    svg = io.BytesIO()
    with translation.override(session.language):  # shown on the projector
        title = gettext("QR code to join this session")
    segno.make(_join_url(request, session), error="m").save(
        svg, kind="svg", scale=10, border=2, xmldecl=False, title=title
    )
    return HttpResponse(svg.getvalue(), content_type="image/svg+xml")


@login_required
def session_summary(request: HttpRequest, session_id: int) -> HttpResponse:
    session = _get_own_session(request, session_id)
    return render(
        request, "sessions/summary.html", _summary_context(session, NotesForm(instance=session))
    )


@login_required
@require_POST
def session_notes(request: HttpRequest, session_id: int) -> HttpResponse:
    """Save the private notes: autosaved from the control view and the summary."""
    session = _get_own_session(request, session_id)
    form = NotesForm(request.POST, instance=session)
    if not form.is_valid():
        message = " ".join(form.errors["notes"])
        if request.htmx:
            return HttpResponse(
                gettext("Not saved: %(reason)s") % {"reason": escape(message)}, status=422
            )
        return render(request, "sessions/summary.html", _summary_context(session, form), status=400)
    form.save()
    if request.htmx:
        return HttpResponse(
            gettext("Saved at %(time)s.") % {"time": f"{timezone.localtime():%H:%M}"}
        )
    messages.success(request, gettext("Your notes are saved."))
    return redirect("session_summary", session_id=session.pk)


def _summary_context(session: Session, notes_form: NotesForm) -> dict:
    return {"session": session, "review": review(session), "notes_form": notes_form}


@login_required
def session_delete(request: HttpRequest, session_id: int) -> HttpResponse:
    session = _get_own_session(request, session_id)
    if request.method == "POST":
        with transaction.atomic():
            session.delete()
            live.after_commit(live.close_session, session_id)
        messages.success(
            request,
            gettext("“%(title)s” and everything in it is deleted.") % {"title": session.title},
        )
        return redirect("dashboard")
    return render(request, "sessions/session_confirm_delete.html", {"session": session})


# Account ------------------------------------------------------------------------------------


@login_required
def account_settings(request: HttpRequest) -> HttpResponse:
    form = FacilitatorSettingsForm(
        request.POST or None, instance=FacilitatorSettings.of(request.user)
    )
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, gettext("Saved. New sessions use these settings."))
        return redirect("account_settings")
    return render(
        request,
        "sessions/account_settings.html",
        {"form": form},
        status=400 if form.errors else 200,
    )


@login_required
def account_delete(request: HttpRequest) -> HttpResponse:
    """Delete the facilitator and everything that is theirs: sessions, groups, plans."""
    if request.method != "POST":
        return render(request, "sessions/account_confirm_delete.html")
    user = request.user
    live_ids = list(
        Session.objects.owned_by(user)
        .filter(status=Session.Status.LIVE)
        .values_list("pk", flat=True)
    )
    with transaction.atomic():
        forget_sign_ins(user)
        user.delete()
        for session_id in live_ids:
            live.after_commit(live.close_session, session_id)
    logout(request)
    messages.success(request, gettext("Your account and everything in it is deleted."))
    return redirect("home")


# Signing in ---------------------------------------------------------------------------------


class SignInView(LoginView):
    """Django's sign-in page with the throttled form; a throttled attempt answers 429."""

    authentication_form = ThrottledAuthenticationForm

    def form_invalid(self, form: ThrottledAuthenticationForm) -> HttpResponse:
        response = super().form_invalid(form)
        if form.has_error(NON_FIELD_ERRORS, "throttled"):
            response.status_code = 429
        return response
