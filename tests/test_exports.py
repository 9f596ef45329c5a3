"""A session's exports as a facilitator downloads them: results and answers as CSV, the whole
session as JSON, the summary as a PDF."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.urls import reverse
from pypdf import PdfReader

from sessions import exports
from sessions.models import Activity, Answer, Session
from tests.conftest import add_activity
from tests.test_views import answer_with, new_participants

Kind = Activity.Kind
HYPERLINK = '=HYPERLINK("http://evil.example","click")'
EXPORTS = [
    "export_aggregates_csv",
    "export_answers_csv",
    "export_json",
    "export_pdf",
    "export_pdf_private",
]


@pytest.fixture
def reviewed(live_session) -> Session:
    """A live session with answers of every kind, under the default threshold of 3.

    - a scale asked at the start and again at the end (the same measure);
    - a choice with 3 answers and a pass;
    - a word cloud with 3 answers shown and one flagged;
    - open text with 4 approved texts (one a formula), one waiting and one flagged;
    - a multiple choice with 2 answers, under the threshold;
    - an instruction, which takes no answers.
    """
    session = live_session
    session.notes = "Ask Sam about the venue."
    session.save(update_fields=["notes"])
    people = new_participants(session, 6)
    before = add_activity(
        session, Kind.SCALE, "How connected do you feel?", scale_max=5, measure="connected"
    )
    choice = add_activity(session, Kind.SINGLE_CHOICE, "Did you sleep well?")
    cloud = add_activity(session, Kind.WORD_CLOUD, "One word for today")
    open_text = add_activity(session, Kind.OPEN_TEXT, "What helps you connect?")
    too_few = add_activity(session, Kind.MULTIPLE_CHOICE, "Too few answered this")
    add_activity(session, Kind.INSTRUCTION, "Take a breath")
    after = add_activity(
        session, Kind.SCALE, "How connected do you feel now?", scale_max=5, measure="connected"
    )

    scale = [{"value": value} for value in ("2", "3", "3", "4")]
    answer_with(session, before, people[:5], [*scale, None])
    answer_with(
        session, choice, people[:4], [{"choice": "0"}, {"choice": "0"}, {"choice": "1"}, None]
    )
    words = [["hope", "tired"], ["hope"], ["calm"], ["suicidal"]]
    answer_with(session, cloud, people[:4], [{"word": word} for word in words])
    texts = [HYPERLINK, "Talking to a neighbour", "Walking the dog", "A weekly call"]
    texts += ["Cooking together", "I want to die"]
    answer_with(session, open_text, people, [{"text": text} for text in texts])
    for answer in open_text.answers.filter(value__in=texts[:4]):
        session.moderate(answer.pk, Answer.Moderation.APPROVED)
    answer_with(session, too_few, people[:2], [{"choice": ["0", "2"]}, {"choice": "1"}])
    scale = [{"value": value} for value in ("4", "4", "5", "3")]
    answer_with(session, after, people[:4], scale)
    return session


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


def rows_of(rows: list[dict[str, str]], prompt: str) -> list[dict[str, str]]:
    return [row for row in rows if row["prompt"] == prompt]


def pseudonyms(session: Session) -> list[str]:
    return list(session.participants.values_list("pseudonym", flat=True))


def pdf_pages(content: bytes) -> list[str]:
    assert content.startswith(b"%PDF")
    return [page.extract_text() for page in PdfReader(io.BytesIO(content)).pages]


# Results CSV ---------------------------------------------------------------------------------


def test_the_results_csv_has_the_counts_of_each_result_shown(reviewed):
    rows = read_csv(exports.aggregates_csv(reviewed))

    sleep = rows_of(rows, "Did you sleep well?")
    assert [(row["item"], row["count"], row["percent"]) for row in sleep] == [
        ("Yes", "2", "67"),
        ("No", "1", "33"),
        ("Not sure", "0", "0"),
    ]
    assert {(row["position"], row["answered"], row["passed"]) for row in sleep} == {("2", "3", "1")}
    scale = rows_of(rows, "How connected do you feel?")
    assert [row["count"] for row in scale] == ["0", "1", "2", "1", "0"]
    assert {(row["mean"], row["median"]) for row in scale} == {("3.0", "3")}
    # The flagged word is neither counted as shown nor listed.
    cloud = rows_of(rows, "One word for today")
    assert [(row["item"], row["count"]) for row in cloud] == [
        ("hope", "2"),
        ("calm", "1"),
        ("tired", "1"),
    ]
    assert {row["answered"] for row in cloud} == {"3"}
    # Open text: its counts only (its texts are in the answers CSV).
    (open_text,) = rows_of(rows, "What helps you connect?")
    assert (open_text["answered"], open_text["item"]) == ("5", "")


def test_the_results_csv_names_a_hidden_result_without_its_counts(reviewed):
    text = exports.aggregates_csv(reviewed)
    prompts = {row["prompt"] for row in read_csv(text)}

    (hidden,) = rows_of(read_csv(text), "Too few answered this")
    assert hidden["result"] == "below_threshold"
    assert [hidden[name] for name in ("answered", "passed", "item", "count")] == [""] * 4
    assert {row["result"] for row in rows_of(read_csv(text), "Did you sleep well?")} == {"shown"}
    assert "Take a breath" not in prompts  # it takes no answers
    assert "How connected do you feel now?" in prompts
    assert not any(name in text for name in pseudonyms(reviewed))
    assert "suicidal" not in text


# Answers CSV ---------------------------------------------------------------------------------


def test_the_answers_csv_has_a_readable_row_for_each_answer_shown(reviewed):
    rows = read_csv(exports.answers_csv(reviewed))

    assert list(rows[0]) == exports.ANSWER_COLUMNS
    sleep = rows_of(rows, "Did you sleep well?")
    assert sorted((row["answer"], row["passed"]) for row in sleep) == [
        ("", "yes"),
        ("No", "no"),
        ("Yes", "no"),
        ("Yes", "no"),
    ]
    assert sorted(row["answer"] for row in rows_of(rows, "One word for today")) == [
        "calm",
        "hope",
        "hope, tired",
    ]
    assert sorted(row["answer"] for row in rows_of(rows, "How connected do you feel?")) == [
        "",
        "2",
        "3",
        "3",
        "4",
    ]
    # One alias per person who answered, and never their nickname.
    assert {row["person"] for row in rows} == {f"Person {n}" for n in range(1, 6)}
    assert not set(pseudonyms(reviewed)) & {row["person"] for row in rows}


def test_the_answers_csv_has_only_approved_texts_and_nothing_flagged_or_hidden(reviewed):
    rows = read_csv(exports.answers_csv(reviewed))

    assert sorted(row["answer"] for row in rows_of(rows, "What helps you connect?")) == [
        "'" + HYPERLINK,
        "A weekly call",
        "Talking to a neighbour",
        "Walking the dog",
    ]
    answers = {row["answer"] for row in rows}
    assert "Cooking together" not in answers  # still waiting for approval
    assert not answers & {"I want to die", "suicidal"}
    assert not rows_of(rows, "Too few answered this")
    assert not rows_of(rows, "Take a breath")


def test_a_word_the_facilitator_hid_is_in_no_export(reviewed):
    cloud = reviewed.activities.get(prompt="One word for today")
    reviewed.hide_word(cloud.pk, "tired", hidden=True)

    answers = read_csv(exports.answers_csv(reviewed))
    results = exports.aggregates_csv(reviewed)
    data = json.loads(exports.session_json(reviewed))

    assert sorted(row["answer"] for row in rows_of(answers, "One word for today")) == [
        "calm",
        "hope",
        "hope",
    ]
    assert "tired" not in results and "tired" not in json.dumps(data)
    assert "hope" in results


def test_a_hidden_word_leaves_no_trace_once_the_raw_answers_are_deleted(reviewed):
    cloud = reviewed.activities.get(prompt="One word for today")
    reviewed.hide_word(cloud.pk, "tired", hidden=True)
    reviewed.end()

    reviewed.delete_raw_answers()

    cloud.refresh_from_db()
    keys = set(cloud.tallies.values_list("key", flat=True))
    assert "word:tired" not in keys and "word:hope" in keys  # the shown cloud's counts stay
    assert cloud.hidden_words == []
    assert "tired" not in json.dumps(json.loads(exports.session_json(reviewed)))


def test_an_answer_whose_every_word_was_hidden_has_no_row(reviewed):
    cloud = reviewed.activities.get(prompt="One word for today")
    reviewed.hide_word(cloud.pk, "calm", hidden=True)

    rows = rows_of(read_csv(exports.answers_csv(reviewed)), "One word for today")

    assert sorted(row["answer"] for row in rows) == ["hope", "hope, tired"]


def test_the_answers_csv_has_the_session_date_but_no_time_and_no_ids(reviewed):
    rows = read_csv(exports.answers_csv(reviewed))

    assert {row["date"] for row in rows} == {reviewed.started_at.date().isoformat()}
    assert not any(re.search(r"\d:\d\d", cell) for row in rows for cell in row.values())
    assert not {"id", "joined_at", "time"} & set(rows[0])


def test_the_answers_csv_rows_come_in_a_new_random_order(reviewed):
    orders = {tuple(map(str, read_csv(exports.answers_csv(reviewed)))) for _ in range(5)}

    assert len(orders) > 1


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_a_spreadsheet_would_run_as_a_formula_gets_an_apostrophe(start):
    assert exports.safe_cell(f"{start}1+1") == f"'{start}1+1"


def test_plain_cells_are_left_as_they_are():
    assert exports.safe_cell("Talking helps = good") == "Talking helps = good"
    assert exports.safe_cell(3.5) == "3.5"
    assert exports.safe_cell(None) == ""


def test_a_formula_in_a_title_or_prompt_is_neutralised_in_both_csvs(reviewed):
    reviewed.title = "@SUM(1+1)"
    reviewed.save(update_fields=["title"])
    reviewed.activities.filter(prompt="Did you sleep well?").update(prompt="-1 or +1?")

    for text in (exports.aggregates_csv(reviewed), exports.answers_csv(reviewed)):
        rows = read_csv(text)
        assert {row["session"] for row in rows} == {"'@SUM(1+1)"}
        assert rows_of(rows, "'-1 or +1?")


# Withdrawal and retention ---------------------------------------------------------------------


def test_withdrawing_removes_the_participants_rows_and_changes_the_counts(reviewed):
    first = reviewed.participants.order_by("pk").first()

    people_before = {row["person"] for row in read_csv(exports.answers_csv(reviewed))}

    first.withdraw()

    answers = read_csv(exports.answers_csv(reviewed))
    assert len({row["person"] for row in answers}) == len(people_before) - 1
    results = read_csv(exports.aggregates_csv(reviewed))
    scale = rows_of(results, "How connected do you feel?")
    assert {row["answered"] for row in scale} == {"3"}
    # Two answers left to the choice: under the threshold, so hidden in both files now.
    (sleep,) = rows_of(results, "Did you sleep well?")
    assert (sleep["result"], sleep["answered"]) == ("below_threshold", "")
    assert not rows_of(answers, "Did you sleep well?")


def test_the_summary_and_the_json_say_how_many_answers_were_withdrawn(client, reviewed):
    summary = reverse("session_summary", args=[reviewed.pk])
    client.force_login(reviewed.facilitator)
    assert "withdrew" not in client.get(summary).content.decode()
    # Someone who answered some questions and passed one: a pass was in no result.
    person = reviewed.participants.filter(answers__passed=True).distinct().first()
    withdrawn = person.answers.filter(passed=False).count()
    assert withdrawn >= 2

    person.withdraw()
    person.withdraw()  # nothing left: nothing more to count

    reviewed.refresh_from_db()
    assert reviewed.answers_withdrawn == withdrawn
    html = client.get(summary).content.decode()
    assert f"Participants withdrew {withdrawn} answers from their phones" in html
    assert json.loads(exports.session_json(reviewed))["session"]["answers_withdrawn"] == withdrawn


def test_after_the_retention_rule_only_counts_are_left(reviewed):
    reviewed.end()
    reviewed.delete_raw_answers()

    assert read_csv(exports.answers_csv(reviewed)) == []
    assert exports.answers_csv(reviewed).removeprefix("\ufeff").strip() == ",".join(
        f'"{column}"' for column in exports.ANSWER_COLUMNS
    )
    results = read_csv(exports.aggregates_csv(reviewed))
    assert rows_of(results, "Did you sleep well?")
    data = json.loads(exports.session_json(reviewed))
    assert data["session"]["answers_deleted_at"].startswith(
        reviewed.answers_deleted_at.date().isoformat()
    )
    assert data["attendance"]["joined"] == 6


# JSON ----------------------------------------------------------------------------------------


def test_the_json_has_the_session_agenda_results_and_attendance(reviewed):
    data = json.loads(exports.session_json(reviewed))

    assert data["session"]["title"] == "Tuesday circle"
    assert (data["session"]["language"], data["session"]["group"]) == ("en", None)
    assert data["session"]["status"] == "live"
    assert data["session"]["anonymity_threshold"] == 3
    assert data["session"]["answers_deleted_at"] is None
    assert data["attendance"] == {"joined": 6, "peak_present": 0}
    agenda = {item["prompt"]: item for item in data["agenda"]}
    assert [item["position"] for item in data["agenda"]] == [1, 2, 3, 4, 5, 6, 7]
    sleep = agenda["Did you sleep well?"]
    assert sleep["options"] == ["Yes", "No", "Not sure"]
    assert {"planned_seconds", "actual_seconds"} <= set(sleep)
    assert sleep["result"]["answered"] == 3
    assert sleep["result"]["bars"][0] == {"label": "Yes", "count": 2, "percent": 67}
    assert agenda["How connected do you feel?"]["result"]["mean"] == 3.0
    assert "'" + HYPERLINK not in agenda["What helps you connect?"]["result"]["texts"]
    assert HYPERLINK in agenda["What helps you connect?"]["result"]["texts"]
    assert agenda["Too few answered this"]["result"] is None
    assert agenda["Too few answered this"]["result_state"] == "below_threshold"
    assert sleep["result_state"] == "shown"
    breath = agenda["Take a breath"]
    assert (breath["takes_answers"], breath["result"], breath["result_state"]) == (
        False,
        None,
        None,
    )
    assert data["comparisons"] == [
        {
            "measure": "connected",
            "before_position": 1,
            "after_position": 7,
            "mean_change": 1.0,
            "median_change": 1.0,
        }
    ]


def test_the_json_tells_a_question_never_opened_from_one_too_few_answered(reviewed):
    add_activity(reviewed, Kind.SCALE, "Never asked")

    agenda = {item["prompt"]: item for item in json.loads(exports.session_json(reviewed))["agenda"]}

    assert agenda["Never asked"]["result"] is None
    assert agenda["Never asked"]["result_state"] == "not_opened"


def test_the_json_has_no_pseudonyms_notes_scripts_or_flagged_answers(reviewed):
    reviewed.activities.filter(prompt="Take a breath").update(script="Say: breathe slowly.")

    text = exports.session_json(reviewed)

    assert not any(name in text for name in pseudonyms(reviewed))
    assert "Ask Sam" not in text
    assert "breathe slowly" not in text
    assert "suicidal" not in text
    assert "I want to die" not in text
    assert "Cooking together" not in text


# PDF -----------------------------------------------------------------------------------------


def test_the_private_pdf_has_the_summary_then_the_notes_on_a_page_of_their_own(reviewed):
    reviewed.end()

    pages = pdf_pages(exports.summary_pdf(reviewed, private=True))

    assert len(pages) >= 2
    for number, text in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in text
    assert "Tuesday circle" in pages[0]
    assert "JOINED" in pages[0]  # dt, in capitals
    body = "\n".join(pages[:-1])
    for prompt in ("Did you sleep well?", "What helps you connect?", "Take a breath"):
        assert prompt in body
    assert "Fewer than 3 people answered" in body
    assert "Ask Sam about the venue." in pages[-1]
    assert "Ask Sam" not in body
    assert not any(name in "\n".join(pages) for name in pseudonyms(reviewed))
    assert "Confidential" in pages[0]
    assert "I want to die" in body  # the answers that may need care, word for word


def test_the_pdf_to_share_has_no_notes_and_no_words_of_answers_that_may_need_care(reviewed):
    """The plain PDF goes to a co-facilitator or a funder: it counts the answers that may need
    care, but holds neither their words nor the private notes."""
    reviewed.end()

    text = " ".join(pdf_pages(exports.summary_pdf(reviewed)))

    assert "Did you sleep well?" in text
    assert "+1 answer that may need care" in " ".join(text.split())
    for private in ("Ask Sam", "I want to die", "suicidal", "Confidential", "Private notes"):
        assert private not in text


def test_the_pdf_says_when_the_raw_answers_were_deleted(reviewed):
    reviewed.end()
    reviewed.delete_raw_answers()

    text = " ".join(" ".join(pdf_pages(exports.summary_pdf(reviewed))).split())

    deleted_on = f"{reviewed.answers_deleted_at:%-d %b %Y}"
    assert f"raw answers were deleted on {deleted_on}" in text


def test_a_session_without_notes_still_ends_with_a_notes_page(reviewed):
    reviewed.notes = ""
    reviewed.save(update_fields=["notes"])

    pages = pdf_pages(exports.summary_pdf(reviewed, private=True))

    assert "No notes were written in Attune." in pages[-1]


# Downloads ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type", "what"),
    [
        ("export_aggregates_csv", "text/csv; charset=utf-8", "results.csv"),
        ("export_answers_csv", "text/csv; charset=utf-8", "answers.csv"),
        ("export_json", "application/json; charset=utf-8", "session.json"),
        ("export_pdf", "application/pdf", "summary.pdf"),
        ("export_pdf_private", "application/pdf", "summary-private.pdf"),
    ],
)
def test_each_export_downloads_while_live_as_a_private_attachment(
    client, facilitator, reviewed, name, content_type, what
):
    client.force_login(facilitator)

    response = client.get(reverse(name, args=[reviewed.pk]))

    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    date = reviewed.started_at.date().isoformat()
    assert response["Content-Disposition"] == (
        f'attachment; filename="tuesday-circle-{date}-{what}"'
    )
    assert "no-store" in response["Cache-Control"]


def test_the_downloaded_answers_csv_opens_as_utf8(client, facilitator, reviewed):
    client.force_login(facilitator)

    response = client.get(reverse("export_answers_csv", args=[reviewed.pk]))

    assert read_csv(response.content.decode("utf-8"))[0]["session"] == "Tuesday circle"


@pytest.mark.parametrize("name", EXPORTS)
def test_another_facilitators_session_is_not_found(client, other_facilitator, reviewed, name):
    client.force_login(other_facilitator)

    assert client.get(reverse(name, args=[reviewed.pk])).status_code == 404


@pytest.mark.parametrize("name", EXPORTS)
def test_a_visitor_who_is_not_signed_in_is_sent_to_sign_in(client, reviewed, name):
    response = client.get(reverse(name, args=[reviewed.pk]))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


# Answers flagged as possibly needing care ----------------------------------------------------


def test_the_pdf_counts_what_the_results_csv_counts_and_names_the_flagged_answers_apart(reviewed):
    reviewed.end()

    text = " ".join(" ".join(pdf_pages(exports.summary_pdf(reviewed))).split())
    rows = read_csv(exports.aggregates_csv(reviewed))

    # The word cloud: 4 answered, one flagged. The open text: 6 answered, one flagged.
    cloud = text.split("One word for today", 1)[1].split("What helps you connect?", 1)[0]
    (cloud_answered,) = {row["answered"] for row in rows_of(rows, "One word for today")}
    assert f"{cloud_answered} answered · 0 passed" in cloud
    assert "4 answered" not in cloud
    assert "+1 answer that may need care" in cloud
    opened = text.split("What helps you connect?", 1)[1].split("Too few answered this", 1)[0]
    (open_answered,) = {row["answered"] for row in rows_of(rows, "What helps you connect?")}
    assert f"{open_answered} answered · 0 passed" in opened
    assert "6 answered" not in opened
    assert "+1 answer that may need care" in opened


def test_the_counts_exported_stay_the_same_after_the_retention_rule(reviewed):
    reviewed.end()

    def counts() -> tuple[dict[str, str], dict[str, int]]:
        rows = read_csv(exports.aggregates_csv(reviewed))
        agenda = json.loads(exports.session_json(reviewed))["agenda"]
        return (
            {row["prompt"]: row["answered"] for row in rows},
            {item["prompt"]: item["result"]["answered"] for item in agenda if item["result"]},
        )

    before = counts()
    reviewed.delete_raw_answers()

    # The flagged answers were deleted with the rest: they still do not count.
    assert counts() == before
    assert before[0]["One word for today"] == "3"
    assert before[1]["One word for today"] == 3
