"""Where a live session, its agenda, its participants and their answers are stored."""

from __future__ import annotations

import copy
import functools
import hashlib
import re
import secrets
from collections import Counter
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import IntegrityError, connection, models, transaction
from django.db.models import F, Max, Q
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_lazy, gettext_noop, ngettext

from .pseudonyms import random_pseudonym
from .safety import needs_care
from .text import clean_text, strip_punctuation

# No 0/O, 1/I/L: codes are read off a projector and typed on a phone.
JOIN_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
JOIN_CODE_LENGTH = 6
# Tries at a free pseudonym when phones of the same room take the same one at the same moment.
PSEUDONYM_ATTEMPTS = 5

# The options a new emotion check-in starts with, in English; default_feelings() gives them in
# the session's language. Stored as data: a session's answers keep the words they were given.
DEFAULT_FEELINGS = [
    gettext_noop("Calm"),
    gettext_noop("Hopeful"),
    gettext_noop("Connected"),
    gettext_noop("Grateful"),
    gettext_noop("Curious"),
    gettext_noop("Tired"),
    gettext_noop("Anxious"),
    gettext_noop("Lonely"),
    gettext_noop("Sad"),
    gettext_noop("Frustrated"),
    gettext_noop("Overwhelmed"),
    gettext_noop("Numb"),
]
# The two roles a new pair round starts with, like the feelings.
DEFAULT_ROLES = [gettext_noop("Speaker"), gettext_noop("Listener")]

OPEN_TEXT_MAX_LENGTH = 500
# Open text can point at its writer more than a tick in a box: none shows before this many.
OPEN_TEXT_MIN_ANSWERS = 5
# Made by the phone for each answer it sends, so that a resent answer is stored once.
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
PLACEHOLDER = re.compile(r"\[[^\]\n]{3,}\]")
WORD_MAX_LENGTH = 30
WORDS_PER_PERSON = 3


class ActionRefused(Exception):
    """An answer or action refused with a message for the person; nothing was stored."""


def in_language(language: str, words: list[str]) -> list[str]:
    """Default words (marked with gettext_noop) translated into `language`."""
    with translation.override(language):
        return [gettext(word) for word in words]


def default_feelings(language: str) -> list[str]:
    return in_language(language, DEFAULT_FEELINGS)


def new_join_code() -> str:
    return "".join(secrets.choice(JOIN_CODE_ALPHABET) for _ in range(JOIN_CODE_LENGTH))


def normalize_join_code(typed: str) -> str:
    """What a person typed, as a code: case, spaces and dashes do not matter."""
    return "".join(typed.split()).replace("-", "").upper()


def participant_token(cookies: dict[str, str], code: str) -> str | None:
    """The token a phone keeps for the session with this join code. Each session has a cookie
    of its own, so a phone that joins another session keeps its place in this one, and with it
    the right to withdraw its answers. (The one cookie of earlier versions is read too, so that
    phones joined before an upgrade keep their place; it lives 12 hours.)"""
    return cookies.get(participant_cookie(code)) or cookies.get(settings.ATTUNE_PARTICIPANT_COOKIE)


def participant_cookie(code: str) -> str:
    return f"{settings.ATTUNE_PARTICIPANT_COOKIE}_{code}"


def hash_token(token: str) -> str:
    # Only the hash is stored, so a copy of the database cannot impersonate a phone.
    return hashlib.sha256(token.encode()).hexdigest()


def planned_seconds(activities: Iterable[Activity]) -> int:
    """How long these steps are planned to take, by each one's suggested time."""
    return sum(activity.suggested_seconds or 0 for activity in activities)


def retention_days_field(help_text: Any) -> models.PositiveSmallIntegerField:
    """How many days after a session ends its raw answers are kept (see apply_retention)."""
    return models.PositiveSmallIntegerField(
        gettext_lazy("Delete raw answers after (days)"),
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text=help_text,
    )


class FacilitatorSettings(models.Model):
    """A facilitator's defaults for new sessions."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attune_settings"
    )
    retention_days = retention_days_field(
        gettext_lazy(
            "Days after a session ends. Only the counts that met the anonymity threshold "
            "are kept after that."
        )
    )

    class Meta:
        verbose_name_plural = gettext_lazy("facilitator settings")

    def __str__(self) -> str:
        return f"Settings of {self.user}"

    @classmethod
    def of(cls, user: Any) -> FacilitatorSettings:
        return cls.objects.get_or_create(user=user)[0]


def forget_sign_ins(user: Any) -> None:
    """Delete every stored sign-in of `user` (Django's database sessions), as when an account
    is deleted: nothing of it may stay behind."""
    from django.contrib.sessions.models import Session as SignIn

    for sign_in in SignIn.objects.filter(expire_date__gt=timezone.now()).iterator():
        if sign_in.get_decoded().get("_auth_user_id") == str(user.pk):
            sign_in.delete()


class Group(models.Model):
    """A recurring group, such as a weekly circle: its sessions are compared over time."""

    facilitator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attune_groups"
    )
    name = models.CharField(max_length=120)
    keep_pseudonyms = models.BooleanField(
        gettext_lazy("Phones may keep their nickname across this group's sessions"),
        default=False,
        help_text=gettext_lazy(
            "Each participant chooses on their phone. They then see their own check-in "
            "trend there; you still see only group figures."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def sessions_in_order(self) -> list[Session]:
        return list(self.sessions.exclude(status=Session.Status.DRAFT).order_by("started_at"))


class Member(models.Model):
    """A phone that chose to keep its nickname across the sessions of one group.

    Like a participant it is only a pseudonym and the hash of a cookie token.
    """

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="members")
    pseudonym = models.CharField(max_length=60)
    token_hash = models.CharField(max_length=64, unique=True)

    def __str__(self) -> str:
        return self.pseudonym

    @classmethod
    def for_phone(cls, token: str | None, group: Group) -> Member | None:
        if not token or not group.keep_pseudonyms:
            return None
        return only_row(cls.objects.filter(token_hash=hash_token(token), group=group))

    @classmethod
    def enrol(cls, participant: Participant) -> tuple[Member, str]:
        """Let this phone keep `participant`'s nickname in the group's next sessions."""
        token = secrets.token_urlsafe(32)
        member = cls.objects.create(
            group=participant.session.group,
            pseudonym=participant.pseudonym,
            token_hash=hash_token(token),
        )
        participant.member = member
        participant.save(update_fields=["member"])
        return member, token

    def own_trend(self) -> list[tuple[Session, list[Answer]]]:
        """This phone's own answers to the group's repeated scales (check-in and check-out),
        session by session: for its owner's eyes only, on their phone."""
        answers = (
            Answer.objects.filter(
                participant__member=self,
                passed=False,
                activity__kind=Activity.Kind.SCALE,
            )
            .exclude(activity__measure="")
            .select_related("activity__session")
            .order_by("activity__session__started_at", "activity__position")
        )
        by_session: dict[int, tuple[Session, list[Answer]]] = {}
        for answer in answers:
            session = answer.activity.session
            by_session.setdefault(session.pk, (session, []))[1].append(answer)
        return list(by_session.values())


class SessionQuerySet(models.QuerySet["Session"]):
    def owned_by(self, user: Any) -> SessionQuerySet:
        return self.filter(facilitator=user)

    def joinable(self) -> SessionQuerySet:
        return self.filter(status=Session.Status.LIVE)

    def with_join_code(self, code: str) -> SessionQuerySet:
        """The sessions a phone could mean by this code: drafts have no code yet."""
        return self.filter(join_code=code).exclude(status=Session.Status.DRAFT)

    def joining(self, code: str) -> tuple[Session | None, str | None]:
        """The session a new phone means by this code, and why it cannot join (None: it can)."""
        # "live" sorts after "ended", so a live session wins.
        session = self.with_join_code(code).order_by("-status").first()
        if session is None:
            return None, gettext(
                "No session has that code. Check the code on the screen and try again."
            )
        return session, session.join_refusal()

    def join_refusal_for_code(self, code: str) -> str | None:
        """Why a new phone cannot join with this code, or None when it can."""
        return self.joining(code)[1]


class Session(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", gettext_lazy("Draft")
        LIVE = "live", gettext_lazy("Live")
        ENDED = "ended", gettext_lazy("Ended")

    facilitator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="facilitated_sessions"
    )
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    join_code = models.CharField(max_length=12, blank=True, default="")
    anonymity_threshold = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(2), MaxValueValidator(50)],
        help_text=gettext_lazy(
            "Results stay hidden until at least this many people have answered."
        ),
    )
    joins_locked = models.BooleanField(default=False)
    auto_approve = models.BooleanField(
        gettext_lazy("Show open answers without approving each one"),
        default=False,
        help_text=gettext_lazy(
            "Off: each open-text answer waits for your approval before the projector shows it."
        ),
    )
    language = models.CharField(
        gettext_lazy("Language of the session"),
        max_length=10,
        choices=settings.LANGUAGES,
        default="en",
        help_text=gettext_lazy(
            "The projector, the control view and the prompts on the phones use it. Each "
            "phone shows Attune's own words in its browser's language."
        ),
    )
    current_activity = models.ForeignKey(
        "Activity", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The activity opened last, open or closed since: Next from the lobby goes on after it.
    last_activity = models.ForeignKey(
        "Activity", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    results_visible = models.BooleanField(default=True)
    answers_locked = models.BooleanField(default=False)
    timer_ends_at = models.DateTimeField(null=True, blank=True)
    # Seconds left on a paused countdown; None when the countdown runs or there is none.
    timer_paused_seconds = models.PositiveIntegerField(null=True, blank=True)
    # When the open activity was opened: the breathing pacer is in step with it on every screen.
    activity_opened_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    # Reviewing afterwards.
    group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="sessions"
    )
    notes = models.TextField(gettext_lazy("Private notes"), blank=True, max_length=20000)
    retention_days = retention_days_field(
        gettext_lazy(
            "Days after the session ends. Only the counts that met the anonymity "
            "threshold are kept after that."
        )
    )
    # Set when the retention rule deleted the raw answers (see apply_retention).
    answers_deleted_at = models.DateTimeField(null=True, blank=True)
    # Attendance, counted while live: kept when the participants are deleted.
    joined_total = models.PositiveIntegerField(default=0)
    peak_present = models.PositiveIntegerField(default=0)
    # Answers (not passes) that participants withdrew from their phones: the summary says its
    # results leave them out, which explains counts lower than the projector showed.
    answers_withdrawn = models.PositiveIntegerField(default=0)

    # Not stored: the database's clock, in microseconds, just before this copy was read for a
    # render of the counts and results (live.read_for_render). None when it was read otherwise.
    as_of: int | None = None

    objects = SessionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["join_code"], condition=Q(status="live"), name="unique_live_join_code"
            )
        ]
        # Every phone that joins looks its session up by code, among every session kept.
        indexes = [models.Index(fields=["join_code"], name="session_join_code")]

    def __str__(self) -> str:
        return self.title

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._state.adding and self.facilitator_id:
            # A new session keeps its raw answers as long as its facilitator chose by default.
            settings_row = FacilitatorSettings.objects.filter(user_id=self.facilitator_id).first()
            if settings_row:
                self.retention_days = settings_row.retention_days
        super().save(*args, **kwargs)

    @property
    def is_live(self) -> bool:
        return self.status == self.Status.LIVE

    @property
    def is_ended(self) -> bool:
        return self.status == self.Status.ENDED

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.ended_at:
            return self.ended_at - self.started_at
        return None

    def activities_in_order(self) -> list[Activity]:
        return list(self.activities.all())

    def agenda_place(self, activity: Activity) -> tuple[int, int, Activity | None]:
        """Where `activity` stands on the agenda: its number (from 1), the number of steps,
        and the step after it (None for the last). One query, for the control view."""
        steps = list(self.activities.only("pk", "session_id", "position", "kind", "prompt"))
        number = next((i for i, step in enumerate(steps, 1) if step.pk == activity.pk), 0)
        following = steps[number] if 0 < number < len(steps) else None
        return number, len(steps), following

    # Running the session ---------------------------------------------------------------

    def start(self) -> None:
        if self.status != self.Status.DRAFT:
            return
        for _ in range(20):
            self.join_code = new_join_code()
            self.status = self.Status.LIVE
            self.started_at = timezone.now()
            try:
                with transaction.atomic():
                    self.save(update_fields=["join_code", "status", "started_at"])
                return
            except IntegrityError:
                continue  # the code is taken by another live session; draw again
        self.status, self.join_code, self.started_at = self.Status.DRAFT, "", None
        raise RuntimeError("Could not find a free join code")

    def end(self) -> None:
        if not self.is_live:
            return
        self._clock_out()
        self.record_peak(self.present_count())
        self.status = self.Status.ENDED
        self.ended_at = timezone.now()
        self.current_activity = None
        self.joined_total = self.participants.count()
        self._set_timer(None)
        self.save(
            update_fields=[
                "status",
                "ended_at",
                "joined_total",
                "current_activity",
                "timer_ends_at",
                "timer_paused_seconds",
            ]
        )

    def _clock_out(self) -> None:
        """Add the time the open activity has been open to its actual time."""
        if self.current_activity_id and self.activity_opened_at:
            seconds = round((timezone.now() - self.activity_opened_at).total_seconds())
            Activity.objects.filter(pk=self.current_activity_id).update(
                actual_seconds=models.F("actual_seconds") + max(0, seconds)
            )

    def open_activity(self, activity: Activity) -> None:
        if activity.session_id != self.pk:
            raise ActionRefused(gettext("That activity belongs to another session."))
        self._clock_out()
        self.current_activity = self.last_activity = activity
        # A recap shows again results the facilitator may have hidden while they were asked:
        # it waits for "Show results".
        self.results_visible = not activity.private_results and not activity.recap
        self.answers_locked = False
        self.activity_opened_at = timezone.now()
        self._set_timer(activity.timer_seconds)
        self.save(
            update_fields=[
                "current_activity",
                "last_activity",
                "results_visible",
                "answers_locked",
                "activity_opened_at",
                "timer_ends_at",
                "timer_paused_seconds",
            ]
        )

    def close_activity(self) -> None:
        self._clock_out()
        self.current_activity = None
        self._set_timer(None)
        self.save(update_fields=["current_activity", "timer_ends_at", "timer_paused_seconds"])

    def step(self, offset: int, *, seen_activity_id: int | None = None) -> None:
        """Open the next (offset 1) or previous (offset -1) activity of the agenda.

        `seen_activity_id` is the activity that was open when the button was pressed: a double
        click, or presses replayed after a reconnect, must not skip past an activity.
        """
        if seen_activity_id is not None and seen_activity_id != (self.current_activity_id or 0):
            raise ActionRefused(
                gettext("The session has already moved on; that press was ignored.")
            )
        activities = self.activities_in_order()
        if not activities:
            raise ActionRefused(gettext("The agenda is empty: add an activity first."))
        index = self._step_index(activities, offset)
        if not 0 <= index < len(activities):
            raise ActionRefused(
                gettext("This is the last activity.")
                if offset > 0
                else gettext("This is the first activity.")
            )
        self.open_activity(activities[index])

    def _step_index(self, activities: list[Activity], offset: int) -> int:
        """Where Next (offset 1) or Previous (-1) goes on the agenda `activities`. From the lobby,
        after an activity was closed, Next goes on after it and Previous opens it again; before
        any was opened, Next opens the first and Previous the last."""
        ids = [activity.pk for activity in activities]
        if self.current_activity_id is not None:
            return ids.index(self.current_activity_id) + offset
        if self.last_activity_id in ids:
            return ids.index(self.last_activity_id) + (1 if offset > 0 else 0)
        return 0 if offset > 0 else len(activities) - 1

    def next_from_lobby(self) -> Activity | None:
        """What Next opens from the lobby, for the control view (None: nothing is left)."""
        activities = self.activities_in_order()
        index = self._step_index(activities, 1) if activities else -1
        return activities[index] if 0 <= index < len(activities) else None

    def set_results_visible(self, visible: bool) -> None:
        self.results_visible = visible
        self.save(update_fields=["results_visible"])

    def set_answers_locked(self, locked: bool) -> None:
        self.answers_locked = locked
        self.save(update_fields=["answers_locked"])

    def moderate(self, answer_id: Any, moderation: str) -> None:
        """Approve an open-text answer for the projector, or take it off again."""
        answer = (
            Answer.objects.filter(
                pk=parse_id(answer_id),
                activity__session=self,
                activity__kind=Activity.Kind.OPEN_TEXT,
                passed=False,
            )
            .exclude(flagged=True)
            .first()
        )
        if answer is None:
            raise ActionRefused(gettext("That answer is not here any more."))
        answer.moderation = moderation
        answer.save(update_fields=["moderation"])

    def hide_word(self, activity_id: Any, word: Any, *, hidden: bool) -> None:
        """Take a word of a word cloud off the projector and out of its charts, or put it back."""
        activity = self.activities.filter(
            pk=parse_id(activity_id), kind=Activity.Kind.WORD_CLOUD
        ).first()
        if activity is None or not isinstance(word, str) or not 0 < len(word) <= WORD_MAX_LENGTH:
            raise ActionRefused(gettext("That word is not here any more."))
        shown = [w for w in activity.hidden_words if w != word]
        activity.hidden_words = sorted([*shown, word]) if hidden else shown
        activity.save(update_fields=["hidden_words"])

    def set_joins_locked(self, locked: bool) -> None:
        self.joins_locked = locked
        self.save(update_fields=["joins_locked"])

    # The countdown: kept by the server, so every screen and every reconnect shows the same.

    def _set_timer(self, seconds: int | None) -> None:
        self.timer_ends_at = timezone.now() + timedelta(seconds=seconds) if seconds else None
        self.timer_paused_seconds = None

    def restart_timer(self, seconds: int | None) -> None:
        self._set_timer(seconds)
        self.save(update_fields=["timer_ends_at", "timer_paused_seconds"])

    @property
    def timer_paused(self) -> bool:
        return self.timer_paused_seconds is not None

    def timer_remaining_seconds(self) -> int | None:
        if self.timer_paused_seconds is not None:
            return self.timer_paused_seconds
        if self.timer_ends_at is None:
            return None
        return max(0, round((self.timer_ends_at - timezone.now()).total_seconds()))

    def pause_timer(self) -> None:
        if self.timer_ends_at is None:
            raise ActionRefused(gettext("No countdown is running."))
        remaining = self.timer_remaining_seconds()
        if not remaining:
            # Paused at 0:00, it would show "paused" and vanish when resumed.
            raise ActionRefused(
                gettext("The countdown has run out. Use +1 minute to give more time.")
            )
        self.timer_paused_seconds = remaining
        self.timer_ends_at = None
        self.save(update_fields=["timer_ends_at", "timer_paused_seconds"])

    def resume_timer(self) -> None:
        if self.timer_paused_seconds is None:
            raise ActionRefused(gettext("The countdown is not paused."))
        self._set_timer(self.timer_paused_seconds)
        self.save(update_fields=["timer_ends_at", "timer_paused_seconds"])

    def extend_timer(self, seconds: int) -> None:
        """Add time; with no countdown on, start one of that length."""
        if self.timer_paused_seconds is not None:
            self.timer_paused_seconds += seconds
        else:
            self._set_timer((self.timer_remaining_seconds() or 0) + seconds)
        self.save(update_fields=["timer_ends_at", "timer_paused_seconds"])

    def seconds_since_opened(self) -> float | None:
        if self.activity_opened_at is None:
            return None
        return (timezone.now() - self.activity_opened_at).total_seconds()

    # Leading steps -----------------------------------------------------------------------

    def open_step(self, kind: str) -> Activity:
        activity = self.current_activity
        if activity is None or activity.kind != kind:
            label = str(Activity.Kind(kind).label).lower()
            raise ActionRefused(gettext("Open a %(kind)s step first.") % {"kind": label})
        return activity

    def draw_pairs(self) -> None:
        activity = self.open_step(Activity.Kind.PAIR_ROUND)
        activity.draw_pairs()
        self.restart_timer(activity.timer_seconds)

    def next_pair_round(self) -> None:
        activity = self.open_step(Activity.Kind.PAIR_ROUND)
        activity.next_round()
        self.restart_timer(activity.timer_seconds)

    def draw_card(self, *, seen_count: int | None = None) -> None:
        self.open_step(Activity.Kind.QUESTION_CARDS).draw_card(seen_count=seen_count)

    def support_step(self) -> Activity | None:
        """The agenda's support and resources step, to open when someone may need it."""
        return self.activities.filter(kind=Activity.Kind.RESOURCES).first()

    @functools.cached_property
    def shown_support_step(self) -> Activity | None:
        """The support step, once it has been open: phones keep its details at hand while they
        wait and after the end. Read once per reading of the session (phones that connect
        together share one). Nothing opened yet, nothing to read: a room joining at the start
        pays no query for it."""
        if self.last_activity_id is None:
            return None
        return (
            self.activities.filter(kind=Activity.Kind.RESOURCES)
            .filter(Q(actual_seconds__gt=0) | Q(pk=self.last_activity_id))
            .first()
        )

    # The agenda ------------------------------------------------------------------------

    def add_steps(
        self, steps: list[dict[str, Any]], *, source: str = "", before: Activity | None = None
    ) -> list[Activity]:
        """Copy steps (Activity field values, as in the library) to the agenda: before the
        activity `before`, or at the end.

        A copy, not a link: a later version of an exercise never changes this session. A library
        step comes in the session's language where the library translates it.
        """
        from .exercises.translations import localized_steps  # the library imports this module

        added = [
            Activity.objects.create(session=self, **{"source": source, **step})
            for step in localized_steps(steps, self.language)
        ]
        if before is not None:
            others = [a for a in self.activities_in_order() if a not in added]
            at = others.index(before)
            self.renumber([*others[:at], *added, *others[at:]])
        return added

    def translate_library_steps(self, from_language: str) -> tuple[int, int]:
        """After the session's language changed from `from_language`: each step copied from the
        library and not edited since takes the library's words in the new language. Returns how
        many steps changed, and how many from the library were edited and keep their words."""
        from .exercises.translations import TRANSLATABLE_FIELDS, localized_step

        exercises = {exercise.label: exercise for exercise in Exercise.objects.all()}
        changed = kept = 0
        for activity in self.activities.exclude(source=""):
            exercise = exercises.get(activity.source)
            if exercise is None:
                continue
            shown = {name: getattr(activity, name) for name in TRANSLATABLE_FIELDS}
            original = next(
                (
                    step
                    for step in exercise.steps
                    if step["kind"] == activity.kind
                    and all(
                        localized_step(step, from_language).get(name, shown[name]) == shown[name]
                        for name in TRANSLATABLE_FIELDS
                    )
                ),
                None,
            )
            if original is None:
                kept += 1
                continue
            translated = localized_step(original, self.language)
            fields = [name for name in TRANSLATABLE_FIELDS if name in translated]
            if any(getattr(activity, name) != translated[name] for name in fields):
                for name in fields:
                    setattr(activity, name, translated[name])
                activity.save(update_fields=fields)
                changed += 1
        return changed, kept

    def places_between_exercises(
        self, steps: list[Activity] | None = None
    ) -> list[tuple[int, Activity]]:
        """The steps a library exercise may go before (with their number on the agenda): not
        inside a copy of another exercise, whose profile or recap step reads the steps before
        it in the same copy. `steps`: the agenda in order, when it was read already."""
        numbered, number = [], 1
        for block in self.exercise_blocks(steps):
            numbered.append((number, block[0]))
            number += len(block)
        return numbered

    def exercise_blocks(self, steps: list[Activity] | None = None) -> list[list[Activity]]:
        """The agenda in blocks: each copy of a library exercise is one (its profile or recap
        step reads the steps before it in the same copy), each step of the facilitator's own
        a block alone. Two copies of one exercise back to back part where a prompt comes
        again. `steps`: the agenda in order, when it was read already."""
        blocks: list[list[Activity]] = []
        for step in self.activities_in_order() if steps is None else steps:
            block = blocks[-1] if blocks else []
            same_copy = block and step.source and step.source == block[0].source
            if same_copy and step.prompt not in {earlier.prompt for earlier in block}:
                block.append(step)
            else:
                blocks.append([step])
        return blocks

    def renumber(self, activities: list[Activity]) -> None:
        """Put the agenda in this order. All are numbered anew, so that equal or missing
        positions from older edits cannot stick."""
        for position, activity in enumerate(activities, start=1):
            if activity.position != position:
                activity.position = position
                activity.save(update_fields=["position"])

    def steps_with_gaps(self, steps: list[Activity] | None = None) -> list[Activity]:
        """The steps whose text still holds a [bracketed] gap for the facilitator to fill.
        `steps`: the agenda in order, when it was read already."""
        steps = self.activities_in_order() if steps is None else steps
        return [activity for activity in steps if activity.has_placeholders]

    def suggested_minutes(self) -> int:
        return round(planned_seconds(self.activities.only("suggested_seconds")) / 60)

    def agenda_as_steps(self) -> list[dict[str, Any]]:
        """The agenda as steps, to save it as a plan of one's own."""
        return [activity.as_step() for activity in self.activities_in_order()]

    # Participants ---------------------------------------------------------------------

    def join_refusal(self) -> str | None:
        """Why a new phone may not join now, or None when it may."""
        if self.status == self.Status.DRAFT:
            return gettext(
                "This session has not started yet. Ask the facilitator for the code once it has."
            )
        if self.is_ended:
            return gettext("This session has ended. Thank you for taking part.")
        if self.joins_locked:
            return gettext("This session is not taking new participants right now.")
        return None

    def add_participant(self, member: Member | None = None) -> tuple[Participant, str]:
        """A new anonymous participant and the secret token their phone keeps in a cookie.

        A `member` of the session's group keeps its nickname, unless someone here has it already.
        """
        refusal = self.join_refusal()
        if refusal:
            raise ActionRefused(refusal)
        token = secrets.token_urlsafe(32)

        def taken_of(names: list[str]) -> set[str]:
            return set(
                self.participants.filter(pseudonym__in=names).values_list("pseudonym", flat=True)
            )

        wanted = member.pseudonym if member is not None else None
        attempts_left = PSEUDONYM_ATTEMPTS
        while True:
            pseudonym = (
                wanted
                if wanted and not taken_of([wanted])
                else random_pseudonym(taken_of, self.language)
            )
            try:
                with _alone_or_in_a_savepoint():
                    participant = self.participants.create(
                        pseudonym=pseudonym, token_hash=hash_token(token), member=member
                    )
                return participant, token
            except IntegrityError:
                # A room joining at once: another phone took the same free name a moment ago
                # (the database keeps pseudonyms unique in a session). Draw again.
                attempts_left -= 1
                if not attempts_left or not taken_of([pseudonym]):
                    raise  # out of tries, or another cause (the session deleted meanwhile)
                wanted = None

    # Retention ---------------------------------------------------------------------------

    def retention_due(self, now: Any = None) -> bool:
        """Ended at least `retention_days` ago, and its raw answers not deleted yet."""
        if not self.is_ended or self.answers_deleted_at or self.ended_at is None:
            return False
        return self.ended_at + timedelta(days=self.retention_days) <= (now or timezone.now())

    def delete_raw_answers(self, now: Any = None) -> None:
        """Delete the answers and the participants; keep the counts of each activity that met
        the anonymity threshold, and nothing of those that did not, nor of a word the
        facilitator hid. A session being done by another process at this moment is skipped."""
        from .aggregation import summarize  # the aggregation reads these models

        with transaction.atomic():
            session = Session.objects.select_for_update(skip_locked=True).filter(pk=self.pk).first()
            if session is None or session.answers_deleted_at:
                return
            for activity in session.activities.all():
                if activity.takes_answers and summarize(activity, self.anonymity_threshold).hidden:
                    activity.tallies.all().delete()
                elif activity.hidden_words:
                    hidden = [f"word:{word}" for word in activity.hidden_words]
                    activity.tallies.filter(key__in=hidden).delete()
                    activity.hidden_words = []
                    activity.save(update_fields=["hidden_words"])
            Answer.objects.filter(activity__session=session).delete()
            joined = session.participants.count()
            session.participants.all().delete()  # with their receipts, pairs and connections
            self.joined_total = max(session.joined_total, joined)
            self.answers_deleted_at = now or timezone.now()
            self.save(update_fields=["joined_total", "answers_deleted_at"])

    def joined_count(self) -> int:
        if self.answers_deleted_at:
            return self.joined_total  # the participants were deleted with the answers
        return self.participants.count()

    def present_count(self) -> int:
        return self.participants.present().count()

    def joined_and_present_counts(self) -> tuple[int, int]:
        """`joined_count()` and `present_count()` in one query, for the live views' pushes."""
        counts = self.participants.aggregate(
            joined=models.Count("pk"), present=models.Count("pk", filter=connected_now())
        )
        joined = self.joined_count() if self.answers_deleted_at else counts["joined"]
        return joined, counts["present"]

    def record_peak(self, present: int) -> None:
        """Keep `present` as the most phones connected at once, if it is more than before."""
        if present > self.peak_present:
            Session.objects.filter(pk=self.pk, peak_present__lt=present).update(
                peak_present=present
            )
            self.peak_present = present


class Activity(models.Model):
    class Kind(models.TextChoices):
        SINGLE_CHOICE = "single_choice", gettext_lazy("Single choice")
        MULTIPLE_CHOICE = "multiple_choice", gettext_lazy("Multiple choice")
        SCALE = "scale", gettext_lazy("Scale")
        OPEN_TEXT = "open_text", gettext_lazy("Open text")
        WORD_CLOUD = "word_cloud", gettext_lazy("Word cloud")
        EMOTION = "emotion", gettext_lazy("Emotion check-in")
        INSTRUCTION = "instruction", gettext_lazy("Instruction or exercise step")
        BREATHING = "breathing", gettext_lazy("Breathing pacer")
        PAIR_ROUND = "pair_round", gettext_lazy("Pair round")
        QUESTION_CARDS = "question_cards", gettext_lazy("Question cards")
        RESOURCES = "resources", gettext_lazy("Support and resources")

    CHOICE_KINDS = {Kind.SINGLE_CHOICE, Kind.MULTIPLE_CHOICE, Kind.EMOTION}
    # Steps that are led rather than answered.
    STEP_KINDS = {
        Kind.INSTRUCTION,
        Kind.BREATHING,
        Kind.PAIR_ROUND,
        Kind.QUESTION_CARDS,
        Kind.RESOURCES,
    }

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="activities")
    position = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    prompt = models.CharField(max_length=300)
    options = models.JSONField(default=list, blank=True)
    scale_min = models.SmallIntegerField(
        default=1, validators=[MinValueValidator(0), MaxValueValidator(1)]
    )
    scale_max = models.SmallIntegerField(
        default=10, validators=[MinValueValidator(2), MaxValueValidator(10)]
    )
    scale_min_label = models.CharField(max_length=60, blank=True)
    scale_max_label = models.CharField(max_length=60, blank=True)
    body = models.TextField(blank=True, max_length=4000)
    timer_seconds = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(5), MaxValueValidator(3600)]
    )
    # For the facilitator only: what to say and do, and the suggested time.
    script = models.TextField(blank=True, max_length=8000)
    suggested_seconds = models.PositiveIntegerField(null=True, blank=True)
    inhale_seconds = models.PositiveSmallIntegerField(
        default=4, validators=[MinValueValidator(2), MaxValueValidator(8)]
    )
    exhale_seconds = models.PositiveSmallIntegerField(
        default=6, validators=[MinValueValidator(2), MaxValueValidator(10)]
    )
    roles = models.JSONField(default=list, blank=True)
    rounds = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1), MaxValueValidator(6)]
    )
    # The pair round being run (0 until pairs are drawn) and the question cards drawn so far.
    current_round = models.PositiveSmallIntegerField(default=0)
    # The most members in one group of the pairs drawn (a triad: 3), for `rounds_to_run`.
    largest_group = models.PositiveSmallIntegerField(default=0)
    cards_drawn = models.JSONField(default=list, blank=True)
    # Words of a word cloud the facilitator took off the projector (a name, say): left out of
    # every chart of it, the summary's too.
    hidden_words = models.JSONField(default=list, blank=True)
    # A scale asked again later carries the same name, so before and after can be compared.
    measure = models.SlugField(max_length=40, blank=True)
    # How long the activity was open in the session, added up each time it closes.
    actual_seconds = models.PositiveIntegerField(default=0)
    private_results = models.BooleanField(
        default=False, help_text=gettext_lazy("Results are never shown on the projector.")
    )
    # The library exercise this step was copied from, e.g. "check-in v1".
    source = models.CharField(max_length=80, blank=True)
    # A led step that shows the results of its exercise's earlier questions again, for the room
    # to look back at them together ("What did we notice?").
    recap = models.BooleanField(default=False)

    class Meta:
        ordering = ["position", "id"]
        verbose_name_plural = gettext_lazy("activities")

    def __str__(self) -> str:
        return self.prompt

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._state.adding and not self.position:
            last = self.session.activities.aggregate(last=Max("position"))["last"]
            self.position = (last or 0) + 1
        super().save(*args, **kwargs)

    @property
    def takes_answers(self) -> bool:
        return self.kind not in self.STEP_KINDS

    @property
    def is_open_text(self) -> bool:
        return self.kind == self.Kind.OPEN_TEXT

    @property
    def is_choice(self) -> bool:
        return self.kind in self.CHOICE_KINDS

    @property
    def allows_many(self) -> bool:
        return self.kind in {self.Kind.MULTIPLE_CHOICE, self.Kind.EMOTION}

    # What a library step or a saved plan holds: the activity without its live state.
    STEP_FIELDS = (
        "kind",
        "prompt",
        "options",
        "scale_min",
        "scale_max",
        "scale_min_label",
        "scale_max_label",
        "body",
        "inhale_seconds",
        "exhale_seconds",
        "roles",
        "rounds",
        "timer_seconds",
        "private_results",
        "script",
        "suggested_seconds",
        "measure",
        "source",
        "recap",
    )
    # Step fields the facilitator's form does not show as they are: the planned time it shows in
    # minutes (ActivityForm.planned_minutes), the others come only from the library.
    LIBRARY_ONLY_FIELDS = ("suggested_seconds", "measure", "source", "recap")

    def as_step(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.STEP_FIELDS}

    def profile_scales(self) -> list[Activity]:
        """The scales of the same exercise before this led step, when there are several.

        Together they make the group profile shown at this step (as in the emotional
        intelligence self-check: five scales, then "our group profile").
        """
        scales = [
            activity
            for activity in self._earlier_in_exercise()
            if activity.kind == self.Kind.SCALE and not activity.private_results
        ]
        return scales if len(scales) >= 2 else []

    def recap_questions(self) -> list[Activity]:
        """The questions of the same exercise before this step, when it is a recap: the room
        looks at their results again, together. Private reflections stay out."""
        if not self.recap:
            return []
        return [
            activity
            for activity in self._earlier_in_exercise()
            if activity.takes_answers and not activity.private_results
        ]

    def _earlier_in_exercise(self) -> list[Activity]:
        """The activities before this led step that come from the same copy of its library
        exercise, in agenda order."""
        if self.takes_answers or not self.source:
            return []
        found = []
        # Back through this copy of the exercise only: it may be on the agenda twice, and no
        # exercise has a prompt twice, so a prompt seen again is the copy before.
        seen = {self.prompt}
        earlier = self.session.activities.filter(position__lt=self.position).order_by("-position")
        for activity in earlier:
            if activity.source != self.source or activity.prompt in seen:
                break
            seen.add(activity.prompt)
            found.append(activity)
        found.reverse()
        return found

    # Question cards ---------------------------------------------------------------------

    def draw_card(self, *, seen_count: int | None = None) -> None:
        """Show a card not drawn before in this session.

        `seen_count` is how many cards were drawn when the button was pressed: a double click
        must not skip a card.
        """
        if seen_count is not None and seen_count != len(self.cards_drawn):
            raise ActionRefused(gettext("A card was drawn just now; that press was ignored."))
        left = [index for index in range(len(self.options)) if index not in self.cards_drawn]
        if not left:
            raise ActionRefused(gettext("Every card has been drawn."))
        self.cards_drawn = [*self.cards_drawn, secrets.choice(left)]
        self.save(update_fields=["cards_drawn"])

    @property
    def has_placeholders(self) -> bool:
        """Text still holding "[Your local crisis line]"-style gaps for the facilitator to fill."""
        return bool(PLACEHOLDER.search(self.body))

    @functools.cached_property
    def body_for_group(self) -> str:
        """The text as phones and the projector show it: never a gap left to fill. A line holding
        one is left out (a crisis line reading "[Your local crisis line]" helps nobody), and so is
        a heading in capitals left with no line under it ("RIGHT NOW" when every number there is
        a gap). Any line filled in stays."""
        if not self.has_placeholders:
            return self.body
        shown = []
        for paragraph in re.split(r"\n\s*\n", self.body):
            lines = paragraph.splitlines()
            kept = [line for line in lines if not PLACEHOLDER.search(line)]
            heading_alone = kept == lines[:1] and len(lines) > 1 and kept[0].isupper()
            if kept and not heading_alone:
                shown.append("\n".join(kept))
        return "\n\n".join(shown)

    @property
    def current_card(self) -> str | None:
        return self.options[self.cards_drawn[-1]] if self.cards_drawn else None

    # Pair rounds ------------------------------------------------------------------------

    def draw_pairs(self) -> None:
        """Split the phones connected now into pairs (a triad when the count is odd).

        Among many random draws, keep the one that repeats the fewest partners from earlier
        pair rounds of this session.
        """
        present = list(self.session.participants.present())
        if len(present) < 2:
            raise ActionRefused(gettext("At least two people must be connected to draw pairs."))
        # Earlier rounds and the current pairs: "Draw new pairs" should bring new partners.
        met = _partners_so_far(self.session)
        best: list[list[Participant]] = []
        best_repeats = None
        shuffler = secrets.SystemRandom()
        for _ in range(200):
            shuffler.shuffle(present)
            groups = [present[i : i + 2] for i in range(0, len(present) - 1, 2)]
            if len(present) % 2:
                groups[-1].append(present[-1])
            repeats = sum(
                frozenset((a.pk, b.pk)) in met
                for group in groups
                for a in group
                for b in group
                if a.pk < b.pk
            )
            if best_repeats is None or repeats < best_repeats:
                best, best_repeats = [list(group) for group in groups], repeats
            if repeats == 0:
                break
        self.pairs.all().delete()
        PairAssignment.objects.bulk_create(
            PairAssignment(activity=self, participant=member, group=number, position=position)
            for number, group in enumerate(best, start=1)
            for position, member in enumerate(group)
        )
        self.current_round = 1
        self.largest_group = max(map(len, best))
        self.save(update_fields=["current_round", "largest_group"])

    def groups_at_a_glance(self) -> tuple[list[int], int]:
        """For the control view: the sizes of the pair round's groups, smallest first, and how
        many groups have someone whose phone is not connected now."""
        here = Participant.objects.present().filter(pk=models.OuterRef("participant_id"))
        rows = list(self.pairs.annotate(here=models.Exists(here)).values_list("group", "here"))
        sizes = Counter(group for group, _ in rows)
        return sorted(sizes.values()), len({group for group, is_here in rows if not is_here})

    def next_round(self) -> None:
        if not self.current_round:
            raise ActionRefused(gettext("Draw pairs first."))
        if self.current_round >= self.rounds_to_run:
            raise ActionRefused(gettext("That was the last round."))
        self.current_round += 1
        self.save(update_fields=["current_round"])

    def place_late_joiner(self, participant: Participant) -> bool:
        """Put a phone that arrived after the draw into a group; False if it has one already."""
        if not self.current_round or self.pairs.filter(participant=participant).exists():
            return False
        sizes = Counter(self.pairs.values_list("group", flat=True))
        # The smallest group: someone left alone first, otherwise a pair becomes a triad (and
        # only when there is no pair left, a triad a group of four). Nobody changes partner.
        group = min(sizes, key=lambda number: (sizes[number], number)) if sizes else 1
        PairAssignment.objects.create(
            activity=self, participant=participant, group=group, position=sizes.get(group, 0)
        )
        if sizes.get(group, 0) + 1 > self.largest_group:
            self.largest_group = sizes.get(group, 0) + 1
            self.save(update_fields=["largest_group"])
        return True

    @property
    def rounds_to_run(self) -> int:
        """`rounds`, or as many as the largest group has members when that is more (a triad in
        a two-round exercise), so that where the roles swap each member takes the first once."""
        return self.rounds if self.rounds == 1 else max(self.rounds, self.largest_group)

    def partners_of(self, participant: Participant) -> list[int]:
        """The ids of the others in the participant's group (none before pairs are drawn)."""
        mine = self.pairs.filter(participant=participant).values("group")
        return list(
            self.pairs.filter(group__in=mine)
            .exclude(participant=participant)
            .values_list("participant_id", flat=True)
        )

    def group_of(self, participant: Participant) -> list[tuple[Participant, str]] | None:
        """The participant's group for the current round: each member with their role."""
        mine = self.pairs.filter(participant=participant).first()
        if mine is None:
            return None
        members = [
            row.participant
            for row in self.pairs.filter(group=mine.group).select_related("participant")
        ]
        lead = (self.current_round - 1) % len(members)
        first, other = [*self.roles, "", ""][:2]
        return [(member, first if index == lead else other) for index, member in enumerate(members)]

    def scale_values(self) -> list[int]:
        return list(range(self.scale_min, self.scale_max + 1))

    def move(self, offset: int, *, whole_exercise: bool = False) -> None:
        """Swap places with the neighbour above (offset -1) or below (offset 1). With
        `whole_exercise`, the copy of the library exercise this step is in moves as one, past
        the step or the exercise next to it."""
        siblings = list(self.session.activities.all())
        if whole_exercise:
            blocks = self.session.exercise_blocks(siblings)
        else:
            blocks = [[sibling] for sibling in siblings]
        index = next(i for i, block in enumerate(blocks) if self.pk in {s.pk for s in block})
        other_index = index + offset
        if not 0 <= other_index < len(blocks):
            return
        blocks[index], blocks[other_index] = blocks[other_index], blocks[index]
        self.session.renumber([step for block in blocks for step in block])

    def clean_answer(self, data: dict[str, Any]) -> Any:
        """The value to store for an answer message, or ValidationError saying what is wrong."""
        if not self.takes_answers:
            raise ValidationError(gettext("This step does not take answers."))
        if self.is_choice:
            picked = _as_strings(data.get("choice"))
            if not picked:
                raise ValidationError(gettext("Pick an option, or pass."))
            if not self.allows_many and len(picked) > 1:
                raise ValidationError(gettext("Pick only one option."))
            try:
                indexes = sorted({int(value) for value in picked})
            except ValueError:
                raise ValidationError(gettext("That is not one of the options.")) from None
            if any(not 0 <= index < len(self.options) for index in indexes):
                raise ValidationError(gettext("That is not one of the options."))
            return indexes
        if self.kind == self.Kind.SCALE:
            picked = _as_strings(data.get("value"))
            if len(picked) != 1:
                raise ValidationError(gettext("Pick one point on the scale, or pass."))
            try:
                value = int(picked[0])
            except ValueError:
                raise ValidationError(gettext("Pick one point on the scale.")) from None
            if not self.scale_min <= value <= self.scale_max:
                raise ValidationError(
                    gettext("Pick a number from %(lowest)d to %(highest)d.")
                    % {"lowest": self.scale_min, "highest": self.scale_max}
                )
            return value
        if self.kind == self.Kind.OPEN_TEXT:
            texts = _as_strings(data.get("text"))
            if len(texts) != 1:
                raise ValidationError(gettext("Write your answer, or pass."))
            text = clean_text(texts[0], max_length=OPEN_TEXT_MAX_LENGTH + 1, keep_newlines=True)
            if len(text) > OPEN_TEXT_MAX_LENGTH:
                raise ValidationError(
                    ngettext(
                        "Keep it under %(count)d character.",
                        "Keep it under %(count)d characters.",
                        OPEN_TEXT_MAX_LENGTH,
                    )
                    % {"count": OPEN_TEXT_MAX_LENGTH}
                )
            if not text:
                raise ValidationError(gettext("Write your answer, or pass."))
            return text
        # Word cloud: up to three words, folded so "Hope", " hope ", "HOPE" and "hope!" count
        # together. Only what is counted is stored: the tallies and exports read these words.
        words: list[str] = []
        for typed in _as_strings(data.get("word")):
            word = strip_punctuation(clean_text(typed, max_length=WORD_MAX_LENGTH * 4)).casefold()
            if len(word) > WORD_MAX_LENGTH:
                raise ValidationError(
                    ngettext(
                        "Keep each word under %(count)d character.",
                        "Keep each word under %(count)d characters.",
                        WORD_MAX_LENGTH,
                    )
                    % {"count": WORD_MAX_LENGTH}
                )
            if word and word not in words:
                words.append(word)
        if not words:
            raise ValidationError(gettext("Write at least one word, or pass."))
        if len(words) > WORDS_PER_PERSON:
            raise ValidationError(
                ngettext(
                    "Up to %(count)d word, please.",
                    "Up to %(count)d words, please.",
                    WORDS_PER_PERSON,
                )
                % {"count": WORDS_PER_PERSON}
            )
        return words


def _as_strings(value: Any) -> list[str]:
    """Form values arrive as one string or a list of strings (checkboxes); anything else is bad."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise ValidationError(gettext("That answer is not in a form Attune understands."))


def connected_now() -> Q:
    """A participant with a socket open on a server process that is still alive."""
    alive = ServerProcess.objects.alive()
    return Q(pk__in=Connection.objects.filter(server__in=alive).values("participant"))


class ParticipantQuerySet(models.QuerySet["Participant"]):
    def present(self) -> ParticipantQuerySet:
        """Participants with a socket open on a server process that is still alive."""
        return self.filter(connected_now())

    def for_phone(self, token: str | None, join_code: str) -> Participant | None:
        """The participant a phone's cookie stands for in the session with this code."""
        if not token:
            return None  # a phone that has not joined yet: not even a query to build
        return self.for_phones([(token, join_code)])[0]

    def for_phones(self, phones: list[tuple[str | None, str]]) -> list[Participant | None]:
        """for_phone of each (token, join code), in one query: the sockets of a room."""
        hashes = [hash_token(token) if token else None for token, _code in phones]
        found = {
            participant.token_hash: participant
            for participant in self.filter(token_hash__in=set(hashes) - {None})
            .exclude(session__status=Session.Status.DRAFT)
            .annotate(session_join_code=F("session__join_code"))
            .order_by()
        }
        participants: list[Participant | None] = []
        given: set[int] = set()
        for hashed, (_token, code) in zip(hashes, phones, strict=True):
            participant = found.get(hashed)
            if participant is None or participant.session_join_code != code:
                participants.append(None)
                continue
            # A phone with two tabs open: each socket gets a participant object of its own.
            participants.append(copy.copy(participant) if participant.pk in given else participant)
            given.add(participant.pk)
        return participants


class Participant(models.Model):
    """An anonymous phone in one session: a pseudonym and the hash of its cookie token."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="participants")
    pseudonym = models.CharField(max_length=60)
    token_hash = models.CharField(max_length=64, unique=True)
    joined_at = models.DateTimeField(auto_now_add=True)
    # Set when the phone chose to keep its nickname across the sessions of the group.
    member = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.SET_NULL, related_name="participants"
    )

    objects = ParticipantQuerySet.as_manager()

    class Meta:
        ordering = ["joined_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "pseudonym"], name="one_pseudonym_per_session"
            )
        ]

    def __str__(self) -> str:
        return self.pseudonym

    def connected(self, server_id: str) -> Connection:
        """A socket of this phone opened on the server process `server_id`, whose row must
        exist by the commit (a process beats from its start: see presence)."""
        return self.connections.create(server_id=server_id)

    def is_still_here(self) -> bool:
        """Not removed since this object was loaded (with its session, say)."""
        return Participant.objects.filter(pk=self.pk).exists()

    @functools.cached_property
    def is_present(self) -> bool:
        return Participant.objects.present().filter(pk=self.pk).exists()

    def answer(self, activity_id: Any, data: dict[str, Any]) -> Answer:
        """Store the answer in `data` (the phone's form), or refuse it with a reason.

        A message carries the phone's `client_id`: sent again (a retry after a lost
        connection), it is recognised and nothing changes.
        """
        return AnswerBatch.store_one(AnswerRequest(self, activity_id, data))

    def pass_on(self, activity_id: Any, client_id: Any = None) -> Answer:
        return AnswerBatch.store_one(
            AnswerRequest(self, activity_id, {"client_id": client_id}, passed=True)
        )

    def withdraw(self) -> list[int]:
        """Delete all of this participant's answers and take them out of the counts.

        Returns the ids of the activities whose results changed.
        """
        with transaction.atomic():
            answers = list(
                self.answers.select_for_update().select_related("activity").order_by("pk")
            )
            uncounted: Counter[tuple[int, str]] = Counter()
            uncounted.subtract(
                (answer.activity_id, key) for answer in answers for key in answer.tally_keys()
            )
            Tally.objects.count_changes(uncounted)
            # Exactly those counted out (and their receipts).
            Answer.objects.filter(pk__in=[answer.pk for answer in answers]).delete()
        # Counted after the commit, holding no other lock: a facilitator's action locks the
        # session first and the answers after, so locking them the other way round here could
        # deadlock with it. Passes are not counted: they were never in a result.
        if withdrawn := sum(not answer.passed for answer in answers):
            Session.objects.filter(pk=self.session_id).update(
                answers_withdrawn=F("answers_withdrawn") + withdrawn
            )
        return sorted({answer.activity_id for answer in answers})


@dataclass(frozen=True)
class AnswerRequest:
    """A phone's answer (or pass) to store. `data` is the phone's form; its `client_id` names
    the message, so that a copy sent again is recognised."""

    participant: Participant
    activity_id: Any
    data: dict[str, Any]
    passed: bool = False


class AnswerBatch:
    """Answers from many phones stored with the same few statements, however many there are:
    a lookup of the receipts, of the sessions and of the answers being changed (locked), then
    an insert, an update, an insert of the receipts and one tally statement.

    Inside one transaction: add() each request, which refuses a bad one with ActionRefused and
    writes nothing, then save(). Requests are applied in order, so a phone's later message
    overwrites its earlier one in the same batch.
    """

    FIELDS = ["value", "passed", "flagged", "moderation", "client_id"]

    def __init__(self, requests: list[AnswerRequest]) -> None:
        participant_ids = {request.participant.pk for request in requests}
        self.sessions = Session.objects.select_related("current_activity").in_bulk(
            {request.participant.session_id for request in requests}
        )
        self.activities: dict[int, Activity] = {}
        for session in self.sessions.values():
            if session.current_activity:
                session.current_activity.session = session
                self.activities[session.current_activity.pk] = session.current_activity
        # (activity, participant) to the answer, and to the tally keys it counted in before
        # this batch (none for a new one).
        self.answers: dict[tuple[int, int], Answer] = {}
        self.counted: dict[tuple[int, int], list[str]] = {}
        for answer in self._lock(participant_ids):
            answer.activity = self.activities[answer.activity_id]
            key = (answer.activity_id, answer.participant_id)
            self.answers[key], self.counted[key] = answer, answer.tally_keys()
        # The stored messages among these (copies sent again), with what each stored. Read
        # after the lock: a copy being stored by another process has committed by then.
        named = [request.data.get("client_id") for request in requests]
        client_ids = {client_id for client_id in named if isinstance(client_id, str) and client_id}
        receipts = Receipt.objects.filter(
            participant_id__in=participant_ids, client_id__in=client_ids
        ).select_related("answer")
        self.receipts = {
            (receipt.participant_id, receipt.client_id): receipt.answer
            for receipt in (receipts if client_ids else [])
        }
        self.changed: set[tuple[int, int]] = set()
        self.new_receipts: list[Receipt] = []
        # Activities named by late answers: whether each is part of its session (refusals).
        self.known: dict[tuple[int, int | None], bool] = {}

    @classmethod
    def store_one(cls, request: AnswerRequest) -> Answer:
        with transaction.atomic():
            batch = cls([request])
            answer = batch.add(request)
            batch.save()
        return answer

    def add(self, request: AnswerRequest) -> Answer:
        """The answer `request` stores once saved, or ActionRefused saying why it cannot."""
        participant = request.participant
        client_id = parse_client_id(request.data.get("client_id"))
        if (participant.pk, client_id) in self.receipts:
            return self.receipts[participant.pk, client_id]  # a copy of a stored message
        activity = self._open_activity(participant.session_id, request.activity_id)
        if request.passed:
            value, flagged, moderation = None, False, Answer.Moderation.PENDING
        else:
            try:
                value = activity.clean_answer(request.data)
            except ValidationError as error:
                raise ActionRefused(" ".join(error.messages)) from None
            flagged = _needs_care(value)
            approved = activity.session.auto_approve or not activity.is_open_text
            moderation = Answer.Moderation.APPROVED if approved else Answer.Moderation.PENDING
        key = (activity.pk, participant.pk)
        if key not in self.answers:
            self.answers[key] = Answer(activity=activity, participant=participant)
            self.counted[key] = []
        answer = self.answers[key]
        answer.value, answer.passed, answer.flagged = value, request.passed, flagged
        answer.moderation, answer.client_id = moderation, client_id
        self.changed.add(key)
        if client_id:
            self.receipts[participant.pk, client_id] = answer
            self.new_receipts.append(
                Receipt(participant=participant, client_id=client_id, answer=answer)
            )
        return answer

    def save(self) -> None:
        changed = [self.answers[key] for key in sorted(self.changed)]
        stored = [answer for answer in changed if answer.pk is not None]
        stored += self._insert([answer for answer in changed if answer.pk is None])
        Answer.objects.bulk_update(stored, self.FIELDS)
        Receipt.objects.bulk_create(self.new_receipts)
        # Last: everyone answering an activity updates the same tally rows, so their locks
        # are held for as short a time as possible.
        changes: Counter[tuple[int, str]] = Counter()
        for key in self.changed:
            changes.update((key[0], tally) for tally in self.answers[key].tally_keys())
            changes.subtract((key[0], tally) for tally in self.counted[key])
        Tally.objects.count_changes(changes)

    def _open_activity(self, session_id: int, activity_id: Any) -> Activity:
        session = self.sessions.get(session_id)
        if session is None:
            raise ActionRefused(gettext("This session has ended; answers are closed."))
        activity = session.current_activity
        if activity is None or activity.pk != parse_id(activity_id):
            asked = (session.pk, parse_id(activity_id))
            if asked not in self.known:
                self.known[asked] = session.activities.filter(pk=asked[1]).exists()
            if not self.known[asked]:
                raise ActionRefused(gettext("That activity is not part of this session."))
            if session.is_live:
                raise ActionRefused(gettext("That activity is closed; your answer was not saved."))
        if not session.is_live:
            raise ActionRefused(gettext("This session has ended; answers are closed."))
        if not activity.takes_answers:
            raise ActionRefused(gettext("This step does not take answers."))
        if session.answers_locked:
            raise ActionRefused(gettext("Answers are locked for this activity."))
        return activity

    def _insert(self, new: list[Answer]) -> list[Answer]:
        """Insert the new answers. One that another message of the same phone stored meanwhile
        (on another server process, say) is to be overwritten instead: those are returned."""
        overwritten: list[Answer] = []
        while new:
            try:
                with transaction.atomic():
                    Answer.objects.bulk_create(new)
                break
            except IntegrityError:
                raced = []
                for found in self._lock({answer.participant_id for answer in new}):
                    key = (found.activity_id, found.participant_id)
                    mine = self.answers[key]
                    if mine.pk is None:
                        found.activity = mine.activity
                        self.counted[key], mine.pk = found.tally_keys(), found.pk
                        raced.append(mine)
                if not raced:
                    raise
                overwritten += raced
                new = [answer for answer in new if answer.pk is None]
        return overwritten

    def _lock(self, participant_ids: set[int]) -> list[Answer]:
        """The stored answers of these participants to the open activities, locked until the
        transaction ends (in one order, so that batches wait for each other, not deadlock)."""
        if not self.activities:
            return []
        return list(
            Answer.objects.select_for_update()
            .filter(activity_id__in=self.activities, participant_id__in=participant_ids)
            .order_by("pk")
        )


def _partners_so_far(session: Session) -> set[frozenset[int]]:
    """Every pair of participants who have been in one group in this session."""
    groups: dict[tuple[int, int], list[int]] = {}
    rows = PairAssignment.objects.filter(activity__session=session)
    for activity_id, group, participant_id in rows.values_list(
        "activity_id", "group", "participant_id"
    ):
        groups.setdefault((activity_id, group), []).append(participant_id)
    return {
        frozenset((a, b)) for members in groups.values() for a in members for b in members if a < b
    }


def _needs_care(value: Any) -> bool:
    """Open words that may signal a crisis (see sessions/safety.py)."""
    if isinstance(value, str):
        return needs_care(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return needs_care(" ".join(value))
    return False


def _alone_or_in_a_savepoint() -> AbstractContextManager[Any]:
    """Around one write that may clash with a unique constraint. Outside a transaction the
    statement is atomic by itself: no BEGIN and COMMIT to wait for. Inside one, a savepoint
    keeps the clash from spoiling the rest of it."""
    alone = connection.get_autocommit() and not connection.in_atomic_block
    return nullcontext() if alone else transaction.atomic()


def only_row(queryset: models.QuerySet[Any]) -> Any:
    """The row of a lookup that matches at most one (a unique key), or None.

    Unlike first(), no ORDER BY: on the answer path, compiling it costs more than the query.
    """
    return next(iter(queryset[:1]), None)


def parse_client_id(value: Any) -> str:
    """The id a phone made for one answer, "" when it sent none, or refused when malformed."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not CLIENT_ID.fullmatch(value):
        raise ActionRefused(
            gettext("That answer could not be read. Reload the page and try again.")
        )
    return value


def parse_id(value: Any) -> int | None:
    """A database id sent by a client, or None when it is not one."""
    if isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**63 else None


class Answer(models.Model):
    """One participant's answer (or pass) to one activity; changing it overwrites it."""

    class Moderation(models.TextChoices):
        # Open text waits for the facilitator before the projector shows it.
        PENDING = "pending", gettext_lazy("Waiting for approval")
        APPROVED = "approved", gettext_lazy("Shown")
        HIDDEN = "hidden", gettext_lazy("Hidden")

    activity = models.ForeignKey(Activity, on_delete=models.CASCADE, related_name="answers")
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="answers")
    passed = models.BooleanField(default=False)
    # Choice kinds: list of option indexes; scale: int; open text: str; word cloud: list of words.
    value = models.JSONField(null=True, blank=True)
    # Open words that may signal a crisis: shown to the facilitator only, never projected.
    flagged = models.BooleanField(default=False)
    moderation = models.CharField(
        max_length=10, choices=Moderation.choices, default=Moderation.PENDING
    )
    # The phone's id for the message that stored this answer (see Participant.answer).
    client_id = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["activity", "participant"], name="one_answer_per_participant"
            )
        ]

    def __str__(self) -> str:
        return f"Answer to {self.activity_id}"

    def tally_keys(self) -> list[str]:
        """The tallies this answer counts in (see Tally)."""
        return tally_keys(
            self.activity.kind, passed=self.passed, flagged=self.flagged, value=self.value
        )


def tally_keys(kind: str, *, passed: bool, flagged: bool, value: Any) -> list[str]:
    """The tallies an answer with these fields counts in, for an activity of this kind.

    A function of the fields alone, so that the data migration that first filled the tallies
    can use it too.
    """
    if passed:
        return ["passed"]
    if flagged:
        # A possible crisis is for the facilitator's eyes only: counted, never charted.
        return ["answered", "flagged"]
    keys = ["answered"]
    if kind in Activity.CHOICE_KINDS:
        keys += [f"option:{index}" for index in value]
    elif kind == Activity.Kind.SCALE:
        keys.append(f"point:{value}")
    elif kind == Activity.Kind.WORD_CLOUD:
        keys += [f"word:{word}" for word in value]
    return keys


class TallyManager(models.Manager["Tally"]):
    # The data migration that filled the tallies rebuilds them with this manager.
    use_in_migrations = True

    def count_changes(self, changes: Counter[tuple[int, str]]) -> None:
        """Add `changes` ((activity id, key) to a change of count) to the tallies.

        One statement, whatever the number of keys, and none when nothing changed (a pass
        passed again, an answer sent again unchanged).
        """
        # Sorted, so that concurrent answers lock the same rows in the same order: on
        # PostgreSQL they then wait for each other instead of deadlocking.
        rows = sorted((key, change) for key, change in changes.items() if change)
        if not rows:
            return
        quote = connection.ops.quote_name
        table = quote(self.model._meta.db_table)
        activity_column, key_column, count_column = (
            quote(self.model._meta.get_field(name).column) for name in ("activity", "key", "count")
        )
        # INSERT ... ON CONFLICT DO UPDATE: PostgreSQL, and SQLite from 3.24. Only names from
        # _meta are put in the text; the values are parameters.
        sql = (
            f"INSERT INTO {table} ({activity_column}, {key_column}, {count_column}) "  # noqa: S608
            f"VALUES {', '.join(['(%s, %s, %s)'] * len(rows))} "
            f"ON CONFLICT ({activity_column}, {key_column}) "
            f"DO UPDATE SET {count_column} = {table}.{count_column} + excluded.{count_column}"
        )
        parameters = [
            value for (activity_id, key), change in rows for value in (activity_id, key, change)
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, parameters)

    def rebuild(self, activity: Any) -> None:
        """Count the answers to `activity` again from scratch (an Activity, or the historical
        one of a migration).

        For a migration or a repair, while no answers arrive: an answer stored during the
        recount could be counted twice.
        """
        counts = Counter(
            key
            for passed, flagged, value in activity.answers.values_list("passed", "flagged", "value")
            for key in tally_keys(activity.kind, passed=passed, flagged=flagged, value=value)
        )
        self.filter(activity=activity).delete()
        self.bulk_create(
            self.model(activity=activity, key=key, count=count)
            for key, count in sorted(counts.items())
        )


class Tally(models.Model):
    """A running count over the answers to one activity, changed as each answer is stored:
    showing results reads a few tallies instead of recounting every answer.

    The keys:

    - "answered": answers that are not passes, flagged ones included; "passed": passes;
      "flagged": answers flagged as a possible crisis (sessions/safety.py).
    - "option:<index>": choice kinds (single and multiple choice, emotion check-in), once for
      each option picked.
    - "point:<value>": scale, the point picked.
    - "word:<word>": word cloud, once for each word.

    A flagged answer counts in "answered" and "flagged" only: what it says is never charted.
    Open text has only the first three: its texts are read from the answers, for moderation.
    A tally whose answers changed away stays, at 0.
    """

    activity = models.ForeignKey(Activity, on_delete=models.CASCADE, related_name="tallies")
    # "word:" and the longest word a word cloud takes fit with room to spare.
    key = models.CharField(max_length=100)
    count = models.IntegerField(default=0)

    objects = TallyManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["activity", "key"], name="one_tally_per_key")
        ]

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"


class ServerProcessQuerySet(models.QuerySet["ServerProcess"]):
    def alive(self) -> ServerProcessQuerySet:
        return self.filter(beat_at__gte=timezone.now() - ServerProcess.timeout())


class ServerProcess(models.Model):
    """A running server process. It beats every few seconds; one that stopped beating (killed,
    crashed) no longer counts the sockets it held, so presence never depends on a clean exit."""

    id = models.CharField(primary_key=True, max_length=32)
    beat_at = models.DateTimeField()
    # Where it runs and how it reaches the others: see presence.refuse_to_share_in_memory_layer.
    host = models.CharField(max_length=255, blank=True, default="")
    pid = models.PositiveIntegerField(null=True, blank=True)
    in_memory_layer = models.BooleanField(default=False)

    objects = ServerProcessQuerySet.as_manager()

    def __str__(self) -> str:
        return self.id

    @staticmethod
    def timeout() -> timedelta:
        return timedelta(seconds=settings.ATTUNE_PRESENCE_TIMEOUT)

    @classmethod
    def beat(cls, server_id: str, **about: Any) -> None:
        """This process is alive; the long dead are forgotten, with their connections."""
        now = timezone.now()
        cls.objects.update_or_create(pk=server_id, defaults={"beat_at": now, **about})
        cls.objects.filter(beat_at__lt=now - 10 * cls.timeout()).delete()


class Connection(models.Model):
    """One open socket of a phone, held by one server process."""

    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="connections"
    )
    server = models.ForeignKey(ServerProcess, on_delete=models.CASCADE, related_name="+")
    # The socket's channel-layer name, to reach this socket alone (a pair round's partner who
    # came or went); blank for a row made without a socket.
    channel = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.participant_id} on {self.server_id}"


class Receipt(models.Model):
    """A phone's message that was stored. Every one is kept, not only the latest, so that a late
    copy of an earlier message cannot undo a later change."""

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="receipts")
    client_id = models.CharField(max_length=64)
    answer = models.ForeignKey(Answer, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["participant", "client_id"], name="one_receipt_per_id")
        ]

    def __str__(self) -> str:
        return self.client_id


class PairAssignment(models.Model):
    """Who talks with whom in a pair round: one row a participant, grouped by number."""

    activity = models.ForeignKey(Activity, on_delete=models.CASCADE, related_name="pairs")
    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="pair_assignments"
    )
    group = models.PositiveIntegerField()
    # Order within the group: the first role moves one place along each round.
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["group", "position"]
        constraints = [
            models.UniqueConstraint(fields=["activity", "participant"], name="one_group_per_round")
        ]

    def __str__(self) -> str:
        return f"Group {self.group}"


class ExerciseQuerySet(models.QuerySet["Exercise"]):
    def latest_versions(self) -> list[Exercise]:
        latest: dict[str, Exercise] = {}
        for exercise in self.order_by("slug", "-version"):
            latest.setdefault(exercise.slug, exercise)
        return sorted(latest.values(), key=lambda exercise: exercise.title.casefold())


class Exercise(models.Model):
    """One version of a library exercise, as loaded from its data file."""

    slug = models.SlugField(max_length=80)
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    purpose = models.TextField()
    duration_minutes = models.PositiveSmallIntegerField()
    audience = models.TextField()
    safety = models.JSONField(default=list)
    sources = models.JSONField(default=list)
    # Each step holds Activity field values; see sessions/exercises/schema.py.
    steps = models.JSONField(default=list)
    content_hash = models.CharField(max_length=64)

    objects = ExerciseQuerySet.as_manager()

    class Meta:
        ordering = ["title", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["slug", "version"], name="one_exercise_version")
        ]

    def __str__(self) -> str:
        return f"{self.title} (v{self.version})"

    @property
    def label(self) -> str:
        return f"{self.slug} v{self.version}"


class PlanQuerySet(models.QuerySet["Plan"]):
    def available_to(self, user: Any) -> PlanQuerySet:
        """The library's plans and the facilitator's own."""
        return self.filter(Q(owner__isnull=True) | Q(owner=user))


class Plan(models.Model):
    """A ready agenda: from the library (no owner) or saved by a facilitator."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="plans",
    )
    slug = models.SlugField(max_length=80, blank=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    duration_minutes = models.PositiveSmallIntegerField(default=0)
    steps = models.JSONField(default=list)

    objects = PlanQuerySet.as_manager()

    class Meta:
        ordering = ["owner_id", "title"]
        constraints = [
            models.UniqueConstraint(
                fields=["slug"], condition=Q(owner__isnull=True), name="unique_library_plan"
            )
        ]

    def __str__(self) -> str:
        return self.title
