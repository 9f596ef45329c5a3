"""Tallies: the counts of each activity's answers, kept as answers arrive instead of recounted."""

from __future__ import annotations

import importlib
import statistics
import uuid

import pytest
from django.apps import apps
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from sessions import live
from sessions.aggregation import summarize
from sessions.models import (
    WORD_MAX_LENGTH,
    ActionRefused,
    Activity,
    Answer,
    AnswerBatch,
    AnswerRequest,
    Participant,
    ServerProcess,
    Session,
    Tally,
)
from tests.conftest import add_activity

Kind = Activity.Kind
TALLY_TABLE = Tally._meta.db_table
ANSWER_TABLE = Answer._meta.db_table


def tallies(activity: Activity) -> dict[str, int]:
    """The activity's tallies, without those changed back to 0."""
    return dict(activity.tallies.filter(count__gt=0).values_list("key", "count"))


def every_tally(activity: Activity) -> dict[str, int]:
    return dict(activity.tallies.values_list("key", "count"))


def rebuilt(activity: Activity) -> dict[str, int]:
    Tally.objects.rebuild(activity)
    return tallies(activity)


def new_participants(session: Session, count: int) -> list[Participant]:
    return [session.add_participant()[0] for _ in range(count)]


def pick(*indexes: int) -> dict:
    return {"choice": [str(index) for index in indexes]}


def client_id() -> str:
    return uuid.uuid4().hex


def tally_statements(queries: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in queries.captured_queries if TALLY_TABLE in query["sql"]]


@pytest.fixture
def alice(live_session, choice_activity) -> Participant:
    """A participant of the live session, with the choice activity open."""
    live_session.open_activity(choice_activity)
    participant, _ = live_session.add_participant()
    return participant


# Counting as answers arrive -------------------------------------------------------------------


def test_it_counts_a_new_answer_and_its_option(choice_activity, alice):
    alice.answer(choice_activity.pk, pick(1))

    assert tallies(choice_activity) == {"answered": 1, "option:1": 1}


def test_it_counts_each_option_of_a_multiple_choice(live_session):
    activity = add_activity(live_session, Kind.MULTIPLE_CHOICE)
    live_session.open_activity(activity)
    bob, charlie = new_participants(live_session, 2)

    bob.answer(activity.pk, pick(0, 2))
    charlie.answer(activity.pk, pick(2))

    assert tallies(activity) == {"answered": 2, "option:0": 1, "option:2": 2}


def test_a_changed_option_moves_from_the_old_option_to_the_new(choice_activity, alice):
    alice.answer(choice_activity.pk, pick(0))

    alice.answer(choice_activity.pk, pick(1))

    assert every_tally(choice_activity) == {"answered": 1, "option:0": 0, "option:1": 1}


def test_an_answer_changed_to_a_pass_counts_as_a_pass_only(choice_activity, alice):
    alice.answer(choice_activity.pk, pick(0))

    alice.pass_on(choice_activity.pk)

    assert tallies(choice_activity) == {"passed": 1}


def test_a_pass_changed_to_an_answer_counts_as_an_answer_only(choice_activity, alice):
    alice.pass_on(choice_activity.pk)

    alice.answer(choice_activity.pk, pick(2))

    assert tallies(choice_activity) == {"answered": 1, "option:2": 1}


def test_a_scale_answer_counts_its_point_and_moves_when_changed(live_session):
    activity = add_activity(live_session, Kind.SCALE, scale_min=1, scale_max=5)
    live_session.open_activity(activity)
    bob, charlie = new_participants(live_session, 2)
    bob.answer(activity.pk, {"value": "4"})
    charlie.answer(activity.pk, {"value": "4"})

    charlie.answer(activity.pk, {"value": "2"})

    assert tallies(activity) == {"answered": 2, "point:4": 1, "point:2": 1}


def test_changed_words_replace_the_old_words_and_keep_the_shared_ones(live_session):
    activity = add_activity(live_session, Kind.WORD_CLOUD)
    live_session.open_activity(activity)
    bob, charlie = new_participants(live_session, 2)
    bob.answer(activity.pk, {"word": ["tired", "sad"]})
    charlie.answer(activity.pk, {"word": ["Tired"]})

    bob.answer(activity.pk, {"word": ["tired", "better"]})

    assert tallies(activity) == {"answered": 2, "word:tired": 2, "word:better": 1}


def test_the_longest_word_fits_in_a_tally_key(live_session):
    activity = add_activity(live_session, Kind.WORD_CLOUD)
    live_session.open_activity(activity)
    (bob,) = new_participants(live_session, 1)
    longest = "w" * WORD_MAX_LENGTH

    bob.answer(activity.pk, {"word": [longest]})

    assert tallies(activity) == {"answered": 1, f"word:{longest}": 1}


def test_a_flagged_answer_counts_as_answered_and_flagged_but_not_its_words(live_session):
    activity = add_activity(live_session, Kind.WORD_CLOUD)
    live_session.open_activity(activity)
    bob, charlie = new_participants(live_session, 2)
    bob.answer(activity.pk, {"word": ["calm"]})

    charlie.answer(activity.pk, {"word": ["calm", "suicidal"]})

    assert Answer.objects.get(participant=charlie).flagged
    assert tallies(activity) == {"answered": 2, "flagged": 1, "word:calm": 1}


def test_a_flagged_answer_changed_to_plain_words_is_charted_again(live_session):
    activity = add_activity(live_session, Kind.WORD_CLOUD)
    live_session.open_activity(activity)
    (bob,) = new_participants(live_session, 1)
    bob.answer(activity.pk, {"word": ["suicidal"]})

    bob.answer(activity.pk, {"word": ["hopeful"]})

    assert tallies(activity) == {"answered": 1, "word:hopeful": 1}


def test_open_text_counts_answers_passes_and_flags_only(live_session):
    activity = add_activity(live_session, Kind.OPEN_TEXT)
    live_session.open_activity(activity)
    bob, charlie, dave = new_participants(live_session, 3)

    bob.answer(activity.pk, {"text": "More walks"})
    charlie.answer(activity.pk, {"text": "some days I want to die"})
    dave.pass_on(activity.pk)

    assert tallies(activity) == {"answered": 2, "flagged": 1, "passed": 1}


def test_an_answer_stored_meanwhile_by_another_message_is_overwritten_and_counted_once(
    choice_activity, alice, monkeypatch
):
    alice.answer(choice_activity.pk, pick(0))
    # The other message's answer was not there yet when this one looked: its insert then fails.
    look = AnswerBatch._lock
    looks = []

    def first_look_misses(batch, participant_ids):
        looks.append(participant_ids)
        return [] if len(looks) == 1 else look(batch, participant_ids)

    monkeypatch.setattr(AnswerBatch, "_lock", first_look_misses)

    alice.answer(choice_activity.pk, pick(1))

    assert len(looks) == 2
    assert Answer.objects.get(participant=alice).value == [1]
    assert every_tally(choice_activity) == {"answered": 1, "option:0": 0, "option:1": 1}


# Nothing counted twice ------------------------------------------------------------------------


def test_a_replayed_answer_changes_no_tally_and_sends_no_tally_statement(choice_activity, alice):
    message = {**pick(0), "client_id": client_id()}
    alice.answer(choice_activity.pk, message)

    with CaptureQueriesContext(connection) as queries:
        alice.answer(choice_activity.pk, message)
        alice.answer(choice_activity.pk, message)

    assert tally_statements(queries) == []
    assert tallies(choice_activity) == {"answered": 1, "option:0": 1}


def test_an_unchanged_answer_sent_again_sends_no_tally_statement(choice_activity, alice):
    alice.answer(choice_activity.pk, {**pick(0), "client_id": client_id()})
    alice.pass_on(choice_activity.pk, client_id())

    with CaptureQueriesContext(connection) as queries:
        alice.pass_on(choice_activity.pk, client_id())

    assert tally_statements(queries) == []
    assert tallies(choice_activity) == {"passed": 1}


def test_a_changed_answer_is_counted_in_one_statement(live_session):
    activity = add_activity(live_session, Kind.WORD_CLOUD)
    live_session.open_activity(activity)
    (bob,) = new_participants(live_session, 1)
    bob.answer(activity.pk, {"word": ["one", "two", "three"]})

    with CaptureQueriesContext(connection) as queries:
        bob.answer(activity.pk, {"word": ["four", "five", "six"]})

    assert len(tally_statements(queries)) == 1
    assert tallies(activity) == {"answered": 1, "word:four": 1, "word:five": 1, "word:six": 1}


def test_storing_an_answer_costs_the_same_queries_however_many_answers_there_are(
    live_session, choice_activity, alice
):
    first, *others, last = new_participants(live_session, 40)
    with CaptureQueriesContext(connection) as first_answer:
        first.answer(choice_activity.pk, {**pick(0), "client_id": client_id()})
    for other in others:
        other.answer(choice_activity.pk, pick(1))

    with CaptureQueriesContext(connection) as last_answer:
        last.answer(choice_activity.pk, {**pick(0), "client_id": client_id()})

    assert len(last_answer.captured_queries) == len(first_answer.captured_queries)
    assert len(tally_statements(last_answer)) == 1


def store_together(*requests: AnswerRequest) -> list:
    """Store the requests as one batch, as a room's answers arriving together are; the answer
    each stored, or the refusal."""
    with transaction.atomic():
        batch = AnswerBatch(list(requests))
        outcomes = []
        for request in requests:
            try:
                outcomes.append(batch.add(request))
            except ActionRefused as refusal:
                outcomes.append(refusal)
        batch.save()
    return outcomes


def test_a_room_answering_together_costs_the_same_statements_as_a_few_people(
    live_session, choice_activity, alice
):
    people = new_participants(live_session, 55)
    for person in people[:10]:  # some change an answer given before
        person.answer(choice_activity.pk, pick(2))

    def answer_all(group: list[Participant]) -> CaptureQueriesContext:
        with CaptureQueriesContext(connection) as queries:
            store_together(
                *(
                    AnswerRequest(person, choice_activity.pk, {**pick(1), "client_id": client_id()})
                    for person in group
                )
            )
        return queries

    few = answer_all(people[:2] + people[10:13])  # 2 changed answers, 3 new
    many = answer_all(people[2:10] + people[13:])  # 8 changed answers, 42 new

    assert len(many.captured_queries) == len(few.captured_queries)
    assert len(tally_statements(many)) == 1
    assert tallies(choice_activity) == {"answered": 55, "option:1": 55}


def test_a_phone_that_changes_its_answer_within_one_batch_counts_once_with_its_last(
    choice_activity, alice
):
    first = AnswerRequest(alice, choice_activity.pk, {**pick(0), "client_id": client_id()})
    second = AnswerRequest(alice, choice_activity.pk, {**pick(2), "client_id": client_id()})
    refused = AnswerRequest(alice, choice_activity.pk, pick(9))

    outcomes = store_together(first, second, refused)

    assert isinstance(outcomes[2], ActionRefused)
    assert Answer.objects.get(participant=alice).value == [2]
    assert every_tally(choice_activity) == {"answered": 1, "option:2": 1}
    assert alice.receipts.count() == 2


def test_a_message_sent_twice_within_one_batch_is_stored_once(live_session, choice_activity, alice):
    (bob,) = new_participants(live_session, 1)
    message = {**pick(1), "client_id": client_id()}

    outcomes = store_together(
        AnswerRequest(alice, choice_activity.pk, message),
        AnswerRequest(bob, choice_activity.pk, pick(0)),
        AnswerRequest(alice, choice_activity.pk, message),
    )

    assert outcomes[0].pk == outcomes[2].pk
    assert tallies(choice_activity) == {"answered": 2, "option:0": 1, "option:1": 1}
    assert alice.receipts.count() == 1


# Reading the tallies --------------------------------------------------------------------------


def test_summarize_reads_the_tallies_and_not_the_answers(
    live_session, choice_activity, alice, django_assert_max_num_queries
):
    for number, participant in enumerate(new_participants(live_session, 50)):
        participant.answer(choice_activity.pk, pick(number % 3))

    with django_assert_max_num_queries(1) as queries:
        result = summarize(choice_activity, 3)

    assert not any(ANSWER_TABLE in query["sql"] for query in queries.captured_queries)
    assert result.answered == 50
    assert [bar.count for bar in result.bars] == [17, 17, 16]


def test_summarize_reads_only_the_flagged_answers_of_a_word_cloud(
    live_session, django_assert_max_num_queries
):
    activity = add_activity(live_session, Kind.WORD_CLOUD)
    live_session.open_activity(activity)
    *people, flagged = new_participants(live_session, 21)
    for participant in people:
        participant.answer(activity.pk, {"word": ["calm"]})
    flagged.answer(activity.pk, {"word": ["suicidal", "calm"]})

    with django_assert_max_num_queries(2) as queries:
        result = summarize(activity, 3)

    answer_queries = [
        query["sql"] for query in queries.captured_queries if ANSWER_TABLE in query["sql"]
    ]
    assert len(answer_queries) == 1
    assert "flagged" in answer_queries[0]
    assert result.flagged == ["suicidal calm"]
    assert result.answered == 21
    assert [(word.text, word.count) for word in result.words] == [("calm", 20)]


@pytest.mark.parametrize(
    "points",
    [[7], [1, 1, 2, 9], [3, 10, 5, 6], [0, 0, 4], [2, 2, 2, 3, 3, 9], [1, 10], [4, 5, 5, 6, 10]],
)
def test_scale_mean_and_median_from_the_tallies_match_the_answers(live_session, points):
    activity = add_activity(live_session, Kind.SCALE, scale_min=0, scale_max=10)
    live_session.open_activity(activity)
    for participant, point in zip(new_participants(live_session, len(points)), points, strict=True):
        participant.answer(activity.pk, {"value": str(point)})

    result = summarize(activity, 2)

    assert result.median == statistics.median(points)
    assert type(result.median) is type(statistics.median(points))
    assert result.mean == round(statistics.fmean(points), 1)


# Counting again from the answers --------------------------------------------------------------


def test_rebuilt_tallies_equal_the_ones_counted_as_answers_came(live_session):
    choice = add_activity(live_session, Kind.EMOTION)  # Calm, Anxious, Hopeful
    words = add_activity(live_session, Kind.WORD_CLOUD)
    scale = add_activity(live_session, Kind.SCALE, scale_min=1, scale_max=5)
    bob, charlie, dave, erin = new_participants(live_session, 4)

    live_session.open_activity(choice)
    bob.answer(choice.pk, pick(0, 1))
    charlie.answer(choice.pk, pick(1))
    dave.pass_on(choice.pk)
    erin.answer(choice.pk, pick(2))
    bob.answer(choice.pk, pick(2))
    dave.answer(choice.pk, pick(0, 1, 2))
    erin.pass_on(choice.pk)

    live_session.open_activity(words)
    bob.answer(words.pk, {"word": ["rain", "sun"]})
    charlie.answer(words.pk, {"word": ["want to die"]})
    dave.answer(words.pk, {"word": ["sun"]})
    bob.answer(words.pk, {"word": ["fog"]})

    live_session.open_activity(scale)
    bob.answer(scale.pk, {"value": "3"})
    charlie.answer(scale.pk, {"value": "5"})
    charlie.answer(scale.pk, {"value": "1"})

    counted = {activity: tallies(activity) for activity in (choice, words, scale)}
    assert counted[choice] == {
        "answered": 3,
        "passed": 1,
        "option:0": 1,
        "option:1": 2,
        "option:2": 2,
    }
    assert counted[words] == {"answered": 3, "flagged": 1, "word:sun": 1, "word:fog": 1}
    assert counted[scale] == {"answered": 2, "point:3": 1, "point:1": 1}
    for activity, expected in counted.items():
        assert rebuilt(activity) == expected


def test_rebuild_repairs_tallies_that_went_wrong(choice_activity, alice):
    alice.answer(choice_activity.pk, pick(0))
    choice_activity.tallies.filter(key="answered").update(count=7)
    Tally.objects.create(activity=choice_activity, key="option:2", count=3)

    assert rebuilt(choice_activity) == {"answered": 1, "option:0": 1}
    assert every_tally(choice_activity) == {"answered": 1, "option:0": 1}


def test_rebuild_leaves_other_activities_alone(live_session, choice_activity, alice):
    other = add_activity(live_session, Kind.SINGLE_CHOICE, "Another question")
    alice.answer(choice_activity.pk, pick(0))
    live_session.open_activity(other)
    alice.answer(other.pk, pick(1))

    Tally.objects.rebuild(choice_activity)

    assert tallies(other) == {"answered": 1, "option:1": 1}


def test_the_migration_counts_the_answers_stored_before_tallies(live_session, choice_activity):
    live_session.open_activity(choice_activity)
    bob, charlie = new_participants(live_session, 2)
    bob.answer(choice_activity.pk, pick(0))
    charlie.pass_on(choice_activity.pk)
    Tally.objects.all().delete()
    migration = importlib.import_module("sessions.migrations.0007_tally")

    migration.count_existing_answers(apps, schema_editor=None)

    assert tallies(choice_activity) == {"answered": 1, "passed": 1, "option:0": 1}


def test_a_results_push_counts_joined_and_connected_phones_in_one_query(
    live_session, choice_activity
):
    # Up to ten pushes a second while a room answers: each query of a push counts.
    add_activity(live_session, Kind.RESOURCES, "Where to find support")
    live_session.open_activity(choice_activity)
    ServerProcess.beat("server-a")
    first, second, _third = new_participants(live_session, 3)
    first.connected("server-a")
    second.connected("server-a")
    session = live.read_for_render(live_session.pk)

    with CaptureQueriesContext(connection) as queries:
        context = live.live_context(session)

    assert (context["joined"], context["present"]) == (3, 2)
    read = [query["sql"] for query in queries.captured_queries]
    assert len([sql for sql in read if f'FROM "{Participant._meta.db_table}"' in sql]) == 1
    # The agenda's support step is offered only beside an answer that may signal distress.
    assert context["support_step"] is None
    assert not [sql for sql in read if f"'{Kind.RESOURCES}'" in sql]
