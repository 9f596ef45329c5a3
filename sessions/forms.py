from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.utils import translation
from django.utils.translation import gettext, gettext_lazy, ngettext

from . import throttle
from .models import (
    DEFAULT_ROLES,
    Activity,
    FacilitatorSettings,
    Group,
    Session,
    default_feelings,
    in_language,
    normalize_join_code,
)

MAX_OPTIONS = 12
OPTION_MAX_LENGTH = 120
MAX_CARDS = 60
CARD_MAX_LENGTH = 300
ROLE_MAX_LENGTH = 40


class SignupForm(UserCreationForm):
    pass


class JoinForm(forms.Form):
    code = forms.CharField(
        label=gettext_lazy("Session code"),
        max_length=20,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "autocapitalize": "characters",
                "spellcheck": "false",
                "inputmode": "text",
                "autofocus": True,
            }
        ),
    )

    def clean_code(self) -> str:
        return normalize_join_code(self.cleaned_data["code"])


class SessionLanguageMixin(forms.ModelForm):
    """The session's language is picked from a list; a form sent without it (an older page)
    keeps the language the session has, and a new session starts in the facilitator's own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["language"].required = False
        if self.instance.pk is None and "language" not in self.initial:
            self.initial["language"] = session_language_for(translation.get_language())

    def clean_language(self) -> str:
        return self.cleaned_data["language"] or self.initial["language"]


def session_language_for(language: str | None) -> str:
    """The session language closest to `language` (a browser's), English when none fits."""
    try:
        return translation.get_supported_language_variant(language or "")
    except LookupError:
        return Session._meta.get_field("language").default


class SavesItsFieldsOnly(forms.ModelForm):
    """A form on a row that changes while a session runs (the session's open activity and
    counts; an activity's cards drawn, round, time open): saving writes the fields this form
    shows only, never the copy of the others that this request read."""

    # A form field that stands for a model field of another name (minutes for seconds).
    STORED_AS: dict[str, str] = {}

    def save(self, commit: bool = True) -> Any:
        if not commit or self.instance.pk is None or self.errors:
            return super().save(commit)  # a new row; or Django's own error for an invalid form
        stored = {field.name for field in self.instance._meta.concrete_fields}
        names = [self.STORED_AS.get(name, name) for name in self.fields]
        self.instance.save(update_fields=[name for name in names if name in stored])
        return self.instance


class NewSessionForm(SessionLanguageMixin):
    class Meta:
        model = Session
        fields = ["title", "language"]
        labels = {"title": gettext_lazy("Title")}


class PlanForm(forms.Form):
    title = forms.CharField(label=gettext_lazy("Plan title"), max_length=200)
    description = forms.CharField(
        label=gettext_lazy("What it is for (optional)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class SessionForm(SavesItsFieldsOnly, SessionLanguageMixin):
    class Meta:
        model = Session
        fields = [
            "title",
            "language",
            "anonymity_threshold",
            "auto_approve",
            "group",
            "retention_days",
        ]
        labels = {
            "title": gettext_lazy("Title"),
            "anonymity_threshold": gettext_lazy("Show results after this many answers"),
            "group": gettext_lazy("Group"),
        }
        help_texts = {"group": gettext_lazy("A recurring group compares its sessions over time.")}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only the facilitator's own groups.
        self.fields["group"].queryset = Group.objects.filter(
            facilitator_id=self.instance.facilitator_id
        )

    def _promised(self, name: str) -> int | None:
        """What the consent screen promised of `name` to the people who joined: its value as
        saved, once the session has started (a draft promised nothing yet)."""
        if self.instance.status == Session.Status.DRAFT:
            return None
        return self.initial.get(name)

    def clean_anonymity_threshold(self) -> int:
        threshold = self.cleaned_data["anonymity_threshold"]
        promised = self._promised("anonymity_threshold")
        if promised and threshold < promised:
            # People answered under the promise shown on the consent screen.
            raise forms.ValidationError(
                ngettext(
                    "Once a session has started this can only go up: people answered "
                    "on the promise that nothing shows before %(promised)d answer.",
                    "Once a session has started this can only go up: people answered "
                    "on the promise that nothing shows before %(promised)d answers.",
                    promised,
                )
                % {"promised": promised}
            )
        return threshold

    def clean_retention_days(self) -> int:
        days = self.cleaned_data["retention_days"]
        promised = self._promised("retention_days")
        if promised and days > promised:
            # The consent screen told each phone how long its answers are kept.
            raise forms.ValidationError(
                ngettext(
                    "Once a session has started this can only go down: people joined on the "
                    "promise that their answers are deleted %(promised)d day after it ends.",
                    "Once a session has started this can only go down: people joined on the "
                    "promise that their answers are deleted %(promised)d days after it ends.",
                    promised,
                )
                % {"promised": promised}
            )
        return days


class FacilitatorSettingsForm(forms.ModelForm):
    class Meta:
        model = FacilitatorSettings
        fields = ["retention_days"]


class GroupForm(forms.ModelForm):
    class Meta:
        model = Group
        fields = ["name", "keep_pseudonyms"]
        labels = {"name": gettext_lazy("Name")}


class NotesForm(SavesItsFieldsOnly):
    class Meta:
        model = Session
        fields = ["notes"]
        widgets = {"notes": forms.Textarea(attrs={"rows": 4})}


class ActivityForm(SavesItsFieldsOnly):
    """One form for every kind; only the fields that kind uses are kept.

    It also validates the steps of the exercise library (sessions/exercises/schema.py), so a
    step is held to the same rules whether a facilitator types it or a data file brings it.
    """

    QUESTION_FIELDS = ["body", "private_results", "script"]
    FIELDS_BY_KIND = {
        Activity.Kind.SINGLE_CHOICE: ["options", *QUESTION_FIELDS],
        Activity.Kind.MULTIPLE_CHOICE: ["options", *QUESTION_FIELDS],
        Activity.Kind.EMOTION: ["options", *QUESTION_FIELDS],
        Activity.Kind.SCALE: [
            "scale_min",
            "scale_max",
            "scale_min_label",
            "scale_max_label",
            *QUESTION_FIELDS,
        ],
        Activity.Kind.OPEN_TEXT: QUESTION_FIELDS,
        Activity.Kind.WORD_CLOUD: QUESTION_FIELDS,
        Activity.Kind.INSTRUCTION: ["body", "timer_seconds", "script"],
        Activity.Kind.BREATHING: [
            "body",
            "inhale_seconds",
            "exhale_seconds",
            "timer_seconds",
            "script",
        ],
        Activity.Kind.PAIR_ROUND: ["body", "roles", "rounds", "timer_seconds", "script"],
        Activity.Kind.QUESTION_CARDS: ["options", "body", "script"],
        Activity.Kind.RESOURCES: ["body", "script"],
    }
    BODY_REQUIRED = {
        Activity.Kind.INSTRUCTION,
        Activity.Kind.BREATHING,
        Activity.Kind.PAIR_ROUND,
        Activity.Kind.RESOURCES,
    }
    # Changing these after answers exist would change what the stored answers mean.
    ANSWER_SHAPING_FIELDS = {"options", "scale_min", "scale_max"}

    options = forms.CharField(
        label=gettext_lazy("Options, one per line"),
        widget=forms.Textarea(attrs={"rows": 5}),
        required=False,
    )
    roles = forms.CharField(
        label=gettext_lazy("The two roles, one per line"),
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
    )
    planned_minutes = forms.IntegerField(
        label=gettext_lazy("Planned minutes (optional)"),
        help_text=gettext_lazy(
            "For your planning: the agenda adds them up, and the summary sets them beside the "
            "time each step was open."
        ),
        min_value=1,
        max_value=240,
        required=False,
    )
    STORED_AS = {"planned_minutes": "suggested_seconds"}

    class Meta:
        model = Activity
        fields = [name for name in Activity.STEP_FIELDS if name not in Activity.LIBRARY_ONLY_FIELDS]
        labels = {
            "kind": gettext_lazy("Kind"),
            "prompt": gettext_lazy("Prompt"),
            "scale_min": gettext_lazy("Lowest value"),
            "scale_max": gettext_lazy("Highest value"),
            "scale_min_label": gettext_lazy("Label for the lowest value"),
            "scale_max_label": gettext_lazy("Label for the highest value"),
            "body": gettext_lazy("Text shown to everyone"),
            "inhale_seconds": gettext_lazy("Breathe in for (seconds)"),
            "exhale_seconds": gettext_lazy("Breathe out for (seconds)"),
            "rounds": gettext_lazy("Rounds (roles swap each round)"),
            "timer_seconds": gettext_lazy("Countdown in seconds (optional)"),
            "private_results": gettext_lazy("Keep the results off the projector"),
            "script": gettext_lazy("Your script (only you see it)"),
        }
        widgets = {
            "body": forms.Textarea(attrs={"rows": 4}),
            "script": forms.Textarea(attrs={"rows": 4}),
        }

    def __init__(
        self, *args: Any, kind: str | None = None, language: str | None = None, **kwargs: Any
    ) -> None:
        """`language`: the session's, for the words a new activity starts with (the feelings
        of an emotion check-in, the roles of a pair round); the labels follow the page."""
        super().__init__(*args, **kwargs)
        language = language or translation.get_language() or "en"
        # The add form and any open edit forms share a page: their ids must not collide.
        self.auto_id = f"activity-{self.instance.pk}-%s" if self.instance.pk else "new-%s"
        if self.instance.pk:
            kind = self.instance.kind
            del self.fields["kind"]
        else:
            kind = kind if kind in Activity.Kind.values else Activity.Kind.SINGLE_CHOICE
            self.fields["kind"].initial = kind
        # Not `kind`: in a template, form.kind finds the kind field first.
        self.activity_kind = kind
        kept = {"kind", "prompt", *self.FIELDS_BY_KIND[Activity.Kind(kind)], "planned_minutes"}
        for name in list(self.fields):
            if name not in kept:
                del self.fields[name]
        self.order_fields([name for name in self.fields if name != "script"])  # the script last
        if "options" in self.fields:
            options = self.instance.options or (
                default_feelings(language) if kind == Activity.Kind.EMOTION else []
            )
            self.initial["options"] = "\n".join(options)
            if kind == Activity.Kind.QUESTION_CARDS:
                self.fields["options"].label = gettext("The questions on the cards, one per line")
        if "roles" in self.fields:
            roles = self.instance.roles or in_language(language, DEFAULT_ROLES)
            self.initial["roles"] = "\n".join(roles)
        if "body" in self.fields:
            self.fields["body"].required = kind in self.BODY_REQUIRED
        if self.instance.suggested_seconds:
            self.initial["planned_minutes"] = max(1, round(self.instance.suggested_seconds / 60))
        if self.instance.pk and (self.instance.answers.exists() or self.instance.cards_drawn):
            why = (
                gettext("Cards have been drawn already, so the deck can no longer change.")
                if self.instance.cards_drawn
                else gettext("People have answered already, so this can no longer change.")
            )
            for name in self.ANSWER_SHAPING_FIELDS & set(self.fields):
                self.fields[name].disabled = True
                self.fields[name].help_text = why
        self.fields["prompt"].label = (
            gettext("Question or prompt")
            if Activity(kind=kind).takes_answers
            else gettext("Step title")
        )

    def clean_options(self) -> list[str]:
        lines = [" ".join(line.split()) for line in self.cleaned_data["options"].splitlines()]
        options = [line for line in lines if line]
        cards = self.activity_kind == Activity.Kind.QUESTION_CARDS
        fewest, most, longest = (
            (3, MAX_CARDS, CARD_MAX_LENGTH) if cards else (2, MAX_OPTIONS, OPTION_MAX_LENGTH)
        )
        if len(options) < fewest:
            raise forms.ValidationError(
                gettext("Give at least three options, one per line.")
                if cards
                else gettext("Give at least two options, one per line.")
            )
        if len(options) > most:
            raise forms.ValidationError(
                ngettext("Give at most %(count)d option.", "Give at most %(count)d options.", most)
                % {"count": most}
            )
        if any(len(option) > longest for option in options):
            raise forms.ValidationError(
                ngettext(
                    "Keep each option under %(count)d character.",
                    "Keep each option under %(count)d characters.",
                    longest,
                )
                % {"count": longest}
            )
        if len({option.casefold() for option in options}) != len(options):
            raise forms.ValidationError(gettext("Each option must be different."))
        return options

    def clean_roles(self) -> list[str]:
        roles = [" ".join(line.split()) for line in self.cleaned_data["roles"].splitlines()]
        roles = [role for role in roles if role]
        if len(roles) != 2 or roles[0].casefold() == roles[1].casefold():
            raise forms.ValidationError(gettext("Give two different roles, one per line."))
        if any(len(role) > ROLE_MAX_LENGTH for role in roles):
            raise forms.ValidationError(
                ngettext(
                    "Keep each role under %(count)d character.",
                    "Keep each role under %(count)d characters.",
                    ROLE_MAX_LENGTH,
                )
                % {"count": ROLE_MAX_LENGTH}
            )
        return roles

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        low, high = cleaned.get("scale_min"), cleaned.get("scale_max")
        if low is not None and high is not None and low >= high:
            self.add_error("scale_max", gettext("The highest value must be above the lowest."))
        # Only when changed: a library step's 90 seconds shown as 2 minutes stay 90 seconds.
        if "planned_minutes" in self.changed_data:
            minutes = cleaned.get("planned_minutes")
            self.instance.suggested_seconds = minutes * 60 if minutes else None
        return cleaned


class ThrottledAuthenticationForm(AuthenticationForm):
    """Sign-in that slows down password guessing (limits in sessions/throttle.py).

    After too many failures for one username, or from one client address, attempts are refused
    without checking the password until the window ends. A success resets nothing: signing in to
    one's own account must not buy more guesses at other people's.
    """

    error_messages = {
        **AuthenticationForm.error_messages,
        "throttled": gettext_lazy("Too many failed sign-ins. Wait 15 minutes, then try again."),
    }

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        address = throttle.client_address(self.request)
        if throttle.FAILED_SIGN_INS_FROM_ADDRESS.is_blocked(address) or (
            username and throttle.FAILED_SIGN_INS_FOR_USERNAME.is_blocked(username)
        ):
            raise forms.ValidationError(self.error_messages["throttled"], code="throttled")
        try:
            return super().clean()
        except forms.ValidationError as error:
            if error.code == "invalid_login":
                throttle.FAILED_SIGN_INS_FOR_USERNAME.hit(username)
                throttle.FAILED_SIGN_INS_FROM_ADDRESS.hit(address)
            raise


class ThrottledAdminAuthenticationForm(ThrottledAuthenticationForm, AdminAuthenticationForm):
    """The admin's sign-in, under the same throttle: otherwise it would be a way around it."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "throttled": ThrottledAuthenticationForm.error_messages["throttled"],
    }
