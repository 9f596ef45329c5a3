from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import UserCreationForm

from .models import DEFAULT_FEELINGS, Activity, Session, normalize_join_code

MAX_OPTIONS = 12
OPTION_MAX_LENGTH = 120


class SignupForm(UserCreationForm):
    pass


class JoinForm(forms.Form):
    code = forms.CharField(
        label="Session code",
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


class NewSessionForm(forms.ModelForm):
    class Meta:
        model = Session
        fields = ["title"]


class SessionForm(forms.ModelForm):
    class Meta:
        model = Session
        fields = ["title", "anonymity_threshold"]
        labels = {"anonymity_threshold": "Show results after this many answers"}

    def clean_anonymity_threshold(self) -> int:
        threshold = self.cleaned_data["anonymity_threshold"]
        promised = self.initial.get("anonymity_threshold")
        if self.instance.status != Session.Status.DRAFT and promised and threshold < promised:
            # People answered under the promise shown on the consent screen.
            raise forms.ValidationError(
                f"Once a session has started this can only go up: people answered "
                f"on the promise that nothing shows before {promised} answers."
            )
        return threshold


class ActivityForm(forms.ModelForm):
    """One form for every kind; only the fields that kind uses are kept."""

    FIELDS_BY_KIND = {
        Activity.Kind.SINGLE_CHOICE: ["options"],
        Activity.Kind.MULTIPLE_CHOICE: ["options"],
        Activity.Kind.EMOTION: ["options"],
        Activity.Kind.SCALE: ["scale_min", "scale_max", "scale_min_label", "scale_max_label"],
        Activity.Kind.OPEN_TEXT: [],
        Activity.Kind.WORD_CLOUD: [],
        Activity.Kind.INSTRUCTION: ["body", "timer_seconds"],
    }
    # Changing these after answers exist would change what the stored answers mean.
    ANSWER_SHAPING_FIELDS = {"options", "scale_min", "scale_max"}

    options = forms.CharField(
        label="Options, one per line",
        widget=forms.Textarea(attrs={"rows": 5}),
        required=False,
    )

    class Meta:
        model = Activity
        fields = [
            "kind",
            "prompt",
            "options",
            "scale_min",
            "scale_max",
            "scale_min_label",
            "scale_max_label",
            "body",
            "timer_seconds",
        ]
        labels = {
            "prompt": "Prompt",
            "scale_min": "Lowest value",
            "scale_max": "Highest value",
            "scale_min_label": "Label for the lowest value",
            "scale_max_label": "Label for the highest value",
            "body": "Text shown to everyone",
            "timer_seconds": "Countdown in seconds (optional)",
        }
        widgets = {"body": forms.Textarea(attrs={"rows": 4})}

    def __init__(self, *args: Any, kind: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The add form and any open edit forms share a page: their ids must not collide.
        self.auto_id = f"activity-{self.instance.pk}-%s" if self.instance.pk else "new-%s"
        if self.instance.pk:
            kind = self.instance.kind
            del self.fields["kind"]
        else:
            kind = kind if kind in Activity.Kind.values else Activity.Kind.SINGLE_CHOICE
            self.fields["kind"].initial = kind
            self.fields["kind"].widget.attrs["data-kind-select"] = ""
        # Not `kind`: in a template, form.kind finds the kind field first.
        self.activity_kind = kind
        kept = {"kind", "prompt", *self.FIELDS_BY_KIND[Activity.Kind(kind)]}
        for name in list(self.fields):
            if name not in kept:
                del self.fields[name]
        if "options" in self.fields:
            options = self.instance.options or (
                DEFAULT_FEELINGS if kind == Activity.Kind.EMOTION else []
            )
            self.initial["options"] = "\n".join(options)
        if self.instance.pk and self.instance.answers.exists():
            for name in self.ANSWER_SHAPING_FIELDS & set(self.fields):
                self.fields[name].disabled = True
                self.fields[
                    name
                ].help_text = "People have answered already, so this can no longer change."
        self.fields["prompt"].label = (
            "Step title" if kind == Activity.Kind.INSTRUCTION else "Question or prompt"
        )

    def clean_options(self) -> list[str]:
        lines = [" ".join(line.split()) for line in self.cleaned_data["options"].splitlines()]
        options = [line for line in lines if line]
        if len(options) < 2:
            raise forms.ValidationError("Give at least two options, one per line.")
        if len(options) > MAX_OPTIONS:
            raise forms.ValidationError(f"Give at most {MAX_OPTIONS} options.")
        if any(len(option) > OPTION_MAX_LENGTH for option in options):
            raise forms.ValidationError(f"Keep each option under {OPTION_MAX_LENGTH} characters.")
        if len({option.casefold() for option in options}) != len(options):
            raise forms.ValidationError("Each option must be different.")
        return options

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        low, high = cleaned.get("scale_min"), cleaned.get("scale_max")
        if low is not None and high is not None and low >= high:
            self.add_error("scale_max", "The highest value must be above the lowest.")
        return cleaned
