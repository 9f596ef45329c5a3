"""A session's exports: its results and its answers as CSV, the whole session as JSON, and the
summary as a PDF.

Each shows only what the summary page shows: an activity whose result is hidden by the anonymity
threshold exports nothing, and answers flagged as a possible crisis are never exported.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import asdict
from datetime import date
from typing import Any

from django.contrib.staticfiles import finders
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _

from .aggregation import Result
from .models import Activity, Answer, Session
from .review import Review, Step, review

AGGREGATE_COLUMNS = [
    "session",
    "date",
    "position",
    "prompt",
    "kind",
    "answered",
    "passed",
    "mean",
    "median",
    "spread",
    "item",
    "count",
    "percent",
    "result",
]
ANSWER_COLUMNS = ["session", "date", "position", "prompt", "kind", "person", "answer", "passed"]
# A spreadsheet runs a cell starting with one of these as a formula (OWASP, "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PDF_STYLESHEET = "summary_pdf.css"


def filename(session: Session, what: str) -> str:
    """ "tuesday-circle-2025-05-06-answers.csv" for what="answers.csv"."""
    return f"{slugify(session.title) or 'session'}-{session_date(session).isoformat()}-{what}"


def session_date(session: Session) -> date:
    return timezone.localdate(session.started_at or session.created_at)


# CSV ------------------------------------------------------------------------------------------


def aggregates_csv(session: Session) -> str:
    """One row for each bar or word of each result shown; one row for a result with neither
    (open text, whose texts are in the answers CSV); one row without counts for a question
    whose result is not shown, saying why ("below_threshold" or "not_opened")."""
    rows = []
    for position, step in enumerate(review(session).steps, start=1):
        result = step.result
        if result is None:
            continue  # a step that takes no answers
        if step.result_state != "shown":
            blanks = [None] * (len(AGGREGATE_COLUMNS) - 6)
            rows.append(
                [*_activity_cells(session, position, step.activity), *blanks, step.result_state]
            )
            continue
        activity_cells = [
            *_activity_cells(session, position, step.activity),
            result.shown_count,
            result.passed,
            result.mean,
            result.median,
            result.spread,
        ]
        items = [(bar.label, bar.count, bar.percent) for bar in result.bars] or [
            (word.text, word.count, None) for word in result.words
        ]
        rows += [[*activity_cells, *item, "shown"] for item in items or [(None, None, None)]]
    return _csv(AGGREGATE_COLUMNS, rows)


def answers_csv(session: Session) -> str:
    """One row for each answer or pass to an activity whose result is shown, in random order.

    No time and no id, and shuffled, so nothing shows who answered first. Open texts only once
    the facilitator approved them, no word the facilitator hid, and flagged answers never.
    """
    positions = {step.activity.pk: position for position, step in shown_steps(review(session))}
    answers = (
        Answer.objects.filter(activity_id__in=positions.keys(), flagged=False)
        .exclude(
            Q(activity__kind=Activity.Kind.OPEN_TEXT, passed=False)
            & ~Q(moderation=Answer.Moderation.APPROVED)
        )
        .select_related("activity")
    )
    answers = list(answers)
    aliases = _aliases({answer.participant_id for answer in answers})
    rows = [
        [
            *_activity_cells(session, positions[answer.activity_id], answer.activity),
            aliases[answer.participant_id],
            readable,
            "yes" if answer.passed else "no",
        ]
        for answer in answers
        # No row for a word cloud answer whose every word the facilitator hid.
        if (readable := readable_answer(answer)) or answer.passed
    ]
    random.SystemRandom().shuffle(rows)
    return _csv(ANSWER_COLUMNS, rows)


def _aliases(participant_ids: set[int]) -> dict[int, str]:
    """ "Person 1", "Person 2"… in a random order, new for each export: the answers of one person
    in this session read together, but nothing links them to a nickname or to another session
    (a phone may keep its nickname across a group's sessions)."""
    ids = list(participant_ids)
    random.SystemRandom().shuffle(ids)
    return {
        participant_id: _("Person %(number)s") % {"number": number}
        for number, participant_id in enumerate(ids, 1)
    }


def shown_steps(the_review: Review) -> list[tuple[int, Step]]:
    """The steps with a result that is not hidden, with their place in the agenda (from 1)."""
    return [
        (position, step)
        for position, step in enumerate(the_review.steps, start=1)
        if step.result and not step.result.hidden
    ]


def readable_answer(answer: Answer) -> str:
    """An answer as a person reads it: option labels, the scale point, the words, the text."""
    if answer.passed:
        return ""
    activity, value = answer.activity, answer.value
    if activity.is_choice:
        return "; ".join(activity.options[index] for index in value)
    if isinstance(value, list):  # the words of a word cloud, but those it hid
        return ", ".join(word for word in value if word not in activity.hidden_words)
    return str(value)


def safe_cell(value: Any) -> str:
    """The cell as text that no spreadsheet runs as a formula."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def _activity_cells(session: Session, position: int, activity: Activity) -> list[Any]:
    return [session.title, session_date(session), position, activity.prompt, activity.kind]


def _csv(columns: list[str], rows: list[list[Any]]) -> str:
    out = io.StringIO()
    # The byte order mark makes Excel read the file as UTF-8.
    out.write("\ufeff")
    writer = csv.writer(out, quoting=csv.QUOTE_ALL)
    writer.writerow(columns)
    writer.writerows([safe_cell(cell) for cell in row] for row in rows)
    return out.getvalue()


# JSON -----------------------------------------------------------------------------------------


def session_json(session: Session) -> str:
    """The session, its agenda with each result (null while hidden), attendance and the
    before/after comparisons. No pseudonyms, no single answers and no private notes."""
    the_review = review(session)
    positions = {step.activity.pk: n for n, step in enumerate(the_review.steps, start=1)}
    data = {
        "session": {
            "title": session.title,
            "language": session.language,
            "group": session.group.name if session.group_id else None,
            "status": session.status,
            "created_at": session.created_at,
            "started_at": session.started_at,
            "ended_at": session.ended_at,
            "anonymity_threshold": session.anonymity_threshold,
            "retention_days": session.retention_days,
            # Set once the retention rule deleted the raw answers: only counts are left.
            "answers_deleted_at": session.answers_deleted_at,
            # Withdrawn by participants from their phones: no result holds them.
            "answers_withdrawn": session.answers_withdrawn,
        },
        "attendance": {"joined": the_review.joined, "peak_present": the_review.peak_present},
        "agenda": [_agenda_item(positions[step.activity.pk], step) for step in the_review.steps],
        "comparisons": [
            {
                "measure": comparison.measure,
                "before_position": positions[comparison.before.activity.pk],
                "after_position": positions[comparison.after.activity.pk],
                "mean_change": comparison.mean_change,
                "median_change": comparison.median_change,
            }
            for comparison in the_review.comparisons
        ],
    }
    return json.dumps(data, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False)


def _agenda_item(position: int, step: Step) -> dict[str, Any]:
    item = step.activity.as_step()
    del item["script"]  # the facilitator's own words for the room, not a result
    del item["suggested_seconds"]  # as planned_seconds below
    result = step.result
    return {
        "position": position,
        **item,
        "planned_seconds": step.planned_seconds,
        "actual_seconds": step.actual_seconds,
        "takes_answers": result is not None,
        "result": None if result is None or result.hidden else _result_data(result),
        "result_state": step.result_state,
    }


def _result_data(result: Result) -> dict[str, Any]:
    return {
        "answered": result.shown_count,
        "passed": result.passed,
        "bars": [asdict(bar) for bar in result.bars],
        "mean": result.mean,
        "median": result.median,
        "spread": result.spread,
        "words": [{"text": word.text, "count": word.count} for word in result.words],
        "texts": result.texts,
    }


# PDF ------------------------------------------------------------------------------------------


def summary_pdf(session: Session, *, private: bool = False) -> bytes:
    """The summary page as an A4 PDF to share: counts of the answers that may need care, no
    words of them, and no notes. `private`: their words, and the facilitator's notes on a page
    of their own, marked confidential."""
    # Imported here: WeasyPrint loads Pango, which the rest of Attune does without.
    import weasyprint

    html = render_to_string(
        "sessions/summary_pdf.html",
        {"session": session, "review": review(session), "private": private},
    )
    return weasyprint.HTML(string=html).write_pdf(stylesheets=[finders.find(PDF_STYLESHEET)])
