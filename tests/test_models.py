"""Model behaviour: running a session, joining it, the agenda, and checking answers."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from sessions import models as session_models
from sessions.aggregation import summarize
from sessions.models import (
    JOIN_CODE_ALPHABET,
    JOIN_CODE_LENGTH,
    ActionRefused,
    Activity,
    Answer,
    Participant,
    Session,
    new_join_code,
    normalize_join_code,
)
from sessions.text import clean_text, strip_punctuation
from tests.conftest import add_activity

Kind = Activity.Kind


def codes_in_order(*codes: str):
    """A stand-in for new_join_code that hands out `codes` one after another."""
    remaining = list(codes)
    return lambda: remaining.pop(0)


# Starting and ending -----------------------------------------------------------------------


def test_a_new_session_is_a_draft_without_a_code(session):
    assert session.status == Session.Status.DRAFT
    assert session.join_code == ""
    assert session.started_at is None


def test_starting_a_session_makes_it_live_with_a_six_character_code(session):
    session.start()

    session.refresh_from_db()
    assert session.is_live
    assert len(session.join_code) == JOIN_CODE_LENGTH == 6
    assert set(session.join_code) <= set(JOIN_CODE_ALPHABET)
    assert session.started_at is not None
    assert Session.objects.joinable().filter(pk=session.pk).exists()


def test_join_codes_never_use_characters_that_are_easy_to_misread():
    drawn = "".join(new_join_code() for _ in range(500))

    assert set(drawn) <= set(JOIN_CODE_ALPHABET)
    assert not set(drawn) & set("0O1IL")


def test_starting_draws_again_when_the_code_is_taken_by_a_live_session(facilitator, monkeypatch):
    monkeypatch.setattr(session_models, "new_join_code", codes_in_order("AAAAAA"))
    first = Session.objects.create(facilitator=facilitator, title="First")
    first.start()
    monkeypatch.setattr(session_models, "new_join_code", codes_in_order("AAAAAA", "BBBBBB"))
    second = Session.objects.create(facilitator=facilitator, title="Second")

    second.start()

    second.refresh_from_db()
    assert second.is_live
    assert second.join_code == "BBBBBB"
    first.refresh_from_db()
    assert first.join_code == "AAAAAA"


def test_an_ended_sessions_code_may_be_used_again(facilitator, monkeypatch):
    monkeypatch.setattr(session_models, "new_join_code", lambda: "CCCCCC")
    old = Session.objects.create(facilitator=facilitator, title="Last week")
    old.start()
    old.end()
    new = Session.objects.create(facilitator=facilitator, title="This week")

    new.start()

    new.refresh_from_db()
    assert new.is_live
    assert new.join_code == "CCCCCC"


def test_the_database_refuses_two_live_sessions_with_the_same_code(facilitator):
    Session.objects.create(
        facilitator=facilitator, title="One", status=Session.Status.LIVE, join_code="DDDDDD"
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        Session.objects.create(
            facilitator=facilitator, title="Two", status=Session.Status.LIVE, join_code="DDDDDD"
        )

    assert Session.objects.filter(join_code="DDDDDD").count() == 1


def test_the_database_allows_a_live_session_to_share_an_ended_sessions_code(facilitator):
    Session.objects.create(
        facilitator=facilitator, title="Old", status=Session.Status.ENDED, join_code="EEEEEE"
    )

    Session.objects.create(
        facilitator=facilitator, title="New", status=Session.Status.LIVE, join_code="EEEEEE"
    )

    assert Session.objects.filter(join_code="EEEEEE").count() == 2


def test_it_gives_up_with_an_error_when_no_free_code_can_be_found(facilitator, monkeypatch):
    monkeypatch.setattr(session_models, "new_join_code", lambda: "FFFFFF")
    Session.objects.create(facilitator=facilitator, title="Taken").start()
    session = Session.objects.create(facilitator=facilitator, title="Unlucky")

    with pytest.raises(RuntimeError):
        session.start()

    assert Session.objects.get(pk=session.pk).status == Session.Status.DRAFT


def test_starting_a_live_session_again_keeps_its_code(live_session):
    code = live_session.join_code

    live_session.start()

    live_session.refresh_from_db()
    assert live_session.join_code == code


def test_an_ended_session_cannot_be_started_again(live_session):
    live_session.end()

    live_session.start()

    live_session.refresh_from_db()
    assert live_session.is_ended


def test_ending_a_session_closes_the_activity_and_the_timer(live_session):
    activity = add_activity(live_session, Kind.INSTRUCTION, timer_seconds=60)
    live_session.open_activity(activity)

    live_session.end()

    live_session.refresh_from_db()
    assert live_session.is_ended
    assert live_session.ended_at is not None
    assert live_session.current_activity is None
    assert live_session.timer_ends_at is None
    assert live_session.duration is not None
    assert live_session.duration >= timedelta(0)
    assert not Session.objects.joinable().filter(pk=live_session.pk).exists()


def test_ending_a_draft_does_nothing(session):
    session.end()

    session.refresh_from_db()
    assert session.status == Session.Status.DRAFT
    assert session.ended_at is None
    assert session.duration is None


# Opening, closing and stepping through activities ------------------------------------------


def test_opening_an_activity_shows_it_with_results_visible_and_answers_open(live_session):
    first = add_activity(live_session, Kind.OPEN_TEXT)
    second = add_activity(live_session, Kind.WORD_CLOUD)
    live_session.open_activity(first)
    live_session.set_results_visible(False)
    live_session.set_answers_locked(True)

    live_session.open_activity(second)

    live_session.refresh_from_db()
    assert live_session.current_activity == second
    assert live_session.results_visible
    assert not live_session.answers_locked
    assert live_session.timer_ends_at is None


def test_opening_an_activity_with_a_timer_starts_the_countdown(live_session):
    activity = add_activity(live_session, Kind.INSTRUCTION, timer_seconds=90)
    before = timezone.now()

    live_session.open_activity(activity)

    live_session.refresh_from_db()
    assert before + timedelta(seconds=90) <= live_session.timer_ends_at
    assert live_session.timer_ends_at <= timezone.now() + timedelta(seconds=90)
    assert 89 <= live_session.timer_remaining_seconds() <= 90


def test_it_refuses_to_open_another_sessions_activity(live_session, other_facilitator):
    other = Session.objects.create(facilitator=other_facilitator, title="Elsewhere")
    foreign = add_activity(other, Kind.OPEN_TEXT)

    with pytest.raises(ActionRefused):
        live_session.open_activity(foreign)

    live_session.refresh_from_db()
    assert live_session.current_activity is None


def test_closing_an_activity_clears_it_and_its_timer(live_session):
    activity = add_activity(live_session, Kind.INSTRUCTION, timer_seconds=30)
    live_session.open_activity(activity)

    live_session.close_activity()

    live_session.refresh_from_db()
    assert live_session.current_activity is None
    assert live_session.timer_ends_at is None
    assert live_session.timer_remaining_seconds() is None


@pytest.fixture
def agenda(live_session) -> list[Activity]:
    return [
        add_activity(live_session, Kind.OPEN_TEXT, "First"),
        add_activity(live_session, Kind.SCALE, "Second"),
        add_activity(live_session, Kind.WORD_CLOUD, "Third"),
    ]


def test_next_with_nothing_open_opens_the_first_activity(live_session, agenda):
    live_session.step(1)

    live_session.refresh_from_db()
    assert live_session.current_activity == agenda[0]


def test_previous_with_nothing_open_opens_the_last_activity(live_session, agenda):
    live_session.step(-1)

    live_session.refresh_from_db()
    assert live_session.current_activity == agenda[2]


def test_next_after_closing_an_activity_goes_on_after_it(live_session, agenda):
    live_session.open_activity(agenda[1])
    live_session.close_activity()

    live_session.step(1)

    live_session.refresh_from_db()
    assert live_session.current_activity == agenda[2]


def test_previous_after_closing_an_activity_opens_it_again(live_session, agenda):
    live_session.open_activity(agenda[1])
    live_session.close_activity()

    live_session.step(-1)

    live_session.refresh_from_db()
    assert live_session.current_activity == agenda[1]


def test_next_after_closing_the_last_activity_says_it_was_the_last(live_session, agenda):
    live_session.open_activity(agenda[2])
    live_session.close_activity()

    with pytest.raises(ActionRefused, match="last activity"):
        live_session.step(1)
    assert live_session.next_from_lobby() is None


def test_next_after_the_closed_activity_was_deleted_starts_from_the_first(live_session, agenda):
    live_session.open_activity(agenda[1])
    live_session.close_activity()
    agenda[1].delete()
    live_session.refresh_from_db()

    live_session.step(1)

    live_session.refresh_from_db()
    assert live_session.current_activity == agenda[0]


def test_next_and_previous_move_through_the_agenda_in_order(live_session, agenda):
    live_session.open_activity(agenda[0])

    live_session.step(1)
    assert Session.objects.get(pk=live_session.pk).current_activity == agenda[1]
    live_session.step(1)
    assert Session.objects.get(pk=live_session.pk).current_activity == agenda[2]
    live_session.step(-1)
    assert Session.objects.get(pk=live_session.pk).current_activity == agenda[1]


def test_next_follows_the_agenda_order_not_the_order_of_creation(live_session, agenda):
    agenda[2].move(-1)  # First, Third, Second
    live_session.open_activity(agenda[0])

    live_session.step(1)

    live_session.refresh_from_db()
    assert live_session.current_activity == agenda[2]


def test_it_refuses_next_on_the_last_activity(live_session, agenda):
    live_session.open_activity(agenda[2])

    with pytest.raises(ActionRefused, match="last activity"):
        live_session.step(1)

    live_session.refresh_from_db()
    assert live_session.current_activity == agenda[2]


def test_it_refuses_previous_on_the_first_activity(live_session, agenda):
    live_session.open_activity(agenda[0])

    with pytest.raises(ActionRefused, match="first activity"):
        live_session.step(-1)

    live_session.refresh_from_db()
    assert live_session.current_activity == agenda[0]


@pytest.mark.parametrize("offset", [1, -1])
def test_it_refuses_to_step_through_an_empty_agenda(live_session, offset):
    with pytest.raises(ActionRefused, match="agenda is empty"):
        live_session.step(offset)

    live_session.refresh_from_db()
    assert live_session.current_activity is None


# Joining -------------------------------------------------------------------------------------


def test_a_draft_session_refuses_new_participants(session):
    assert "not started" in session.join_refusal()

    with pytest.raises(ActionRefused, match="not started"):
        session.add_participant()

    assert session.joined_count() == 0


def test_an_ended_session_refuses_new_participants(live_session):
    live_session.end()

    assert "ended" in live_session.join_refusal()
    with pytest.raises(ActionRefused, match="ended"):
        live_session.add_participant()
    assert live_session.joined_count() == 0


def test_a_session_with_joins_locked_refuses_new_participants(live_session):
    live_session.set_joins_locked(True)

    assert "not taking new participants" in live_session.join_refusal()
    with pytest.raises(ActionRefused, match="not taking new participants"):
        live_session.add_participant()
    assert live_session.joined_count() == 0


def test_unlocking_joins_lets_people_join_again(live_session):
    live_session.set_joins_locked(True)
    live_session.set_joins_locked(False)

    assert live_session.join_refusal() is None
    live_session.add_participant()
    assert live_session.joined_count() == 1


def test_a_live_session_gives_a_new_participant_a_pseudonym_and_a_long_token(live_session):
    participant, token = live_session.add_participant()

    assert participant.session == live_session
    adjective, animal = participant.pseudonym.split(" ")
    assert adjective and animal
    # At least 128 bits: as long as secrets.token_urlsafe(32), i.e. 256 random bits.
    assert len(token) >= len(secrets.token_urlsafe(32)) == 43
    assert live_session.joined_count() == 1


def test_only_the_hash_of_the_token_is_stored(live_session):
    participant, token = live_session.add_participant()

    row = Participant.objects.filter(pk=participant.pk).values().get()
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    for value in row.values():
        assert token not in str(value)


def test_every_participant_gets_a_different_token(live_session):
    tokens = {live_session.add_participant()[1] for _ in range(5)}

    assert len(tokens) == 5


def test_two_participants_never_share_a_pseudonym(live_session, monkeypatch):
    # Make every draw the same name, so only the check against taken names keeps them apart.
    monkeypatch.setattr("sessions.pseudonyms.secrets.choice", lambda sequence: sequence[0])

    first, _ = live_session.add_participant()
    second, _ = live_session.add_participant()
    third, _ = live_session.add_participant()

    names = [first.pseudonym, second.pseudonym, third.pseudonym]
    assert len(set(names)) == 3
    assert names[0] == "Calm Otter"


def test_a_spanish_session_gives_spanish_nicknames_whose_words_agree(facilitator, monkeypatch):
    session = Session.objects.create(facilitator=facilitator, title="Círculo", language="es")
    session.start()
    # The first animal, a feminine noun, and the first adjective; then a masculine noun.
    monkeypatch.setattr("sessions.pseudonyms.secrets.choice", lambda sequence: sequence[0])
    first, _ = session.add_participant()
    monkeypatch.setattr("sessions.pseudonyms.secrets.choice", lambda sequence: sequence[2])
    second, _ = session.add_participant()

    assert (first.pseudonym, second.pseudonym) == ("Nutria Tranquila", "Zorro Valiente")


def test_a_spanish_room_has_as_many_different_nicknames_as_an_english_one():
    from sessions import pseudonyms

    animals = {animal for animal, _gender in pseudonyms.ANIMALES}
    adjectives = set(pseudonyms.ADJETIVOS)
    assert len(animals) * len(adjectives) == len(pseudonyms.ANIMALS) * len(pseudonyms.ADJECTIVES)
    longest = max(map(len, animals)) + 1 + max(len(word) for pair in adjectives for word in pair)
    assert longest + len(" 999") <= Participant._meta.get_field("pseudonym").max_length


@pytest.mark.parametrize(
    "in_a_transaction",
    [
        # The join view: the clashing INSERT is alone, with no transaction around it.
        pytest.param(False, marks=pytest.mark.django_db(transaction=True), id="alone"),
        pytest.param(True, id="in-a-transaction"),
    ],
)
def test_a_name_another_phone_took_in_the_same_moment_is_drawn_again(
    live_session, monkeypatch, in_a_transaction
):
    # A room joining at once: two phones may both find the same name free. The database keeps
    # it for the first; the second draws again instead of sharing it.
    assert connection.in_atomic_block == in_a_transaction
    draws = iter(["Calm Otter", "Calm Otter", "Brave Lynx"])
    monkeypatch.setattr(session_models, "random_pseudonym", lambda taken_of, language: next(draws))

    first, _ = live_session.add_participant()
    second, _ = live_session.add_participant()

    assert (first.pseudonym, second.pseudonym) == ("Calm Otter", "Brave Lynx")
    assert live_session.joined_count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_migration_numbers_the_names_phones_already_share():
    before, after = ("live", "0010_join_code_index"), ("live", "0011_one_pseudonym_per_session")
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    old = executor.loader.project_state([before]).apps
    facilitator = old.get_model("auth", "User").objects.create(username="old")
    session = old.get_model("live", "Session").objects.create(
        facilitator_id=facilitator.pk, title="Before", join_code="OLD123"
    )
    Participant = old.get_model("live", "Participant")
    for index, name in enumerate(["Calm Otter", "Calm Otter", "Calm Otter 2", "Calm Otter"]):
        Participant.objects.create(session=session, pseudonym=name, token_hash=f"{index:064}")

    try:
        MigrationExecutor(connection).migrate([after])

        names = Participant.objects.filter(session=session).order_by("id")
        assert [participant.pseudonym for participant in names] == [
            "Calm Otter",
            "Calm Otter 3",
            "Calm Otter 2",
            "Calm Otter 4",
        ]
    finally:  # the tests after this one need the latest schema, whatever happened here
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


def test_the_token_finds_its_participant(live_session):
    participant, token = live_session.add_participant()
    live_session.add_participant()

    assert Participant.objects.for_phone(token, live_session.join_code) == participant


@pytest.mark.parametrize("token", [None, "", "not-a-real-token"])
def test_a_missing_or_wrong_token_finds_nobody(live_session, token):
    live_session.add_participant()

    assert Participant.objects.for_phone(token, live_session.join_code) is None


def test_a_token_from_another_session_finds_nobody(live_session, other_facilitator):
    other = Session.objects.create(facilitator=other_facilitator, title="Elsewhere")
    other.start()
    _, token = other.add_participant()

    assert Participant.objects.for_phone(token, live_session.join_code) is None
    assert Participant.objects.for_phone(token, other.join_code) is not None


def test_the_tokens_of_a_room_find_their_participants_in_one_query(
    live_session, other_facilitator, django_assert_num_queries
):
    first, first_token = live_session.add_participant()
    second, second_token = live_session.add_participant()
    other = Session.objects.create(facilitator=other_facilitator, title="Elsewhere")
    other.start()
    _, other_token = other.add_participant()
    code = live_session.join_code
    phones = [
        (first_token, code),
        (None, code),
        ("not-a-real-token", code),
        (other_token, code),  # a token of another session
        (second_token, other.join_code),  # the right token, another session's code
        (first_token, code),  # a second tab of the first phone
        (second_token, code),
    ]

    with django_assert_num_queries(1):
        found = Participant.objects.for_phones(phones)

    assert found == [first, None, None, None, None, first, second]
    assert found[0] is not found[5]  # each socket its own object


def test_a_stored_hash_used_as_a_token_finds_nobody(live_session):
    participant, _ = live_session.add_participant()

    assert Participant.objects.for_phone(participant.token_hash, live_session.join_code) is None


# The agenda ----------------------------------------------------------------------------------


def test_new_activities_go_to_the_end_of_the_agenda(session):
    first = add_activity(session, Kind.OPEN_TEXT, "First")
    second = add_activity(session, Kind.SCALE, "Second")

    assert [a.prompt for a in session.activities_in_order()] == ["First", "Second"]
    assert first.position < second.position


def test_moving_an_activity_up_swaps_it_with_the_one_above(session):
    a = add_activity(session, Kind.OPEN_TEXT, "A")
    add_activity(session, Kind.OPEN_TEXT, "B")
    c = add_activity(session, Kind.OPEN_TEXT, "C")

    c.move(-1)

    assert [x.prompt for x in session.activities_in_order()] == ["A", "C", "B"]
    a.move(1)
    assert [x.prompt for x in session.activities_in_order()] == ["C", "A", "B"]


def test_moving_renumbers_the_agenda_even_after_equal_positions(session):
    for prompt in "ABC":
        add_activity(session, Kind.OPEN_TEXT, prompt)
    session.activities.update(position=5)
    b = session.activities.get(prompt="B")

    b.move(1)

    ordered = session.activities_in_order()
    assert [x.prompt for x in ordered] == ["A", "C", "B"]
    assert [x.position for x in ordered] == [1, 2, 3]


@pytest.mark.parametrize(("prompt", "offset"), [("A", -1), ("C", 1)])
def test_moving_past_either_end_changes_nothing(session, prompt, offset):
    for name in "ABC":
        add_activity(session, Kind.OPEN_TEXT, name)

    session.activities.get(prompt=prompt).move(offset)

    assert [x.prompt for x in session.activities_in_order()] == ["A", "B", "C"]


# Checking answers: choices -------------------------------------------------------------------


@pytest.fixture
def single(session) -> Activity:
    return add_activity(session, Kind.SINGLE_CHOICE)  # Yes, No, Not sure


@pytest.fixture
def multiple(session) -> Activity:
    return add_activity(session, Kind.MULTIPLE_CHOICE)  # Yes, No, Not sure


@pytest.fixture
def emotion(session) -> Activity:
    return add_activity(session, Kind.EMOTION)  # Calm, Anxious, Hopeful


def test_a_single_choice_answer_is_stored_as_the_option_index(single):
    assert single.clean_answer({"choice": "2"}) == [2]
    assert single.clean_answer({"choice": ["0"]}) == [0]


def test_several_picks_are_stored_sorted_and_once_each(multiple, emotion):
    assert multiple.clean_answer({"choice": ["2", "0"]}) == [0, 2]
    assert multiple.clean_answer({"choice": ["1", "1"]}) == [1]
    assert emotion.clean_answer({"choice": ["0", "1", "2"]}) == [0, 1, 2]


def test_it_refuses_two_picks_for_a_single_choice(single):
    with pytest.raises(ValidationError, match="only one"):
        single.clean_answer({"choice": ["0", "1"]})


@pytest.mark.parametrize("choice", ["3", "-1", "99999999999999999999", "yes", "1.0", ""])
def test_it_refuses_a_choice_that_is_not_one_of_the_options(single, multiple, choice):
    for activity in (single, multiple):
        with pytest.raises(ValidationError):
            activity.clean_answer({"choice": choice})


def test_it_refuses_a_multiple_choice_with_one_bad_option(multiple):
    with pytest.raises(ValidationError, match="not one of the options"):
        multiple.clean_answer({"choice": ["0", "3"]})


@pytest.mark.parametrize("data", [{}, {"choice": []}, {"choice": None}])
def test_it_refuses_a_choice_answer_with_nothing_picked(multiple, data):
    with pytest.raises(ValidationError, match="Pick an option"):
        multiple.clean_answer(data)


@pytest.mark.parametrize("choice", [1, [1], True, {"0": "0"}, ["0", 1], ["0", None], 1.0])
def test_it_refuses_choice_values_that_are_not_strings(single, multiple, emotion, choice):
    for activity in (single, multiple, emotion):
        with pytest.raises(ValidationError, match="not in a form"):
            activity.clean_answer({"choice": choice})


# Checking answers: scale ---------------------------------------------------------------------


@pytest.fixture
def scale(session) -> Activity:
    return add_activity(session, Kind.SCALE, scale_min=1, scale_max=5)


def test_a_scale_answer_is_stored_as_a_number(scale):
    assert scale.clean_answer({"value": "1"}) == 1
    assert scale.clean_answer({"value": ["5"]}) == 5


@pytest.mark.parametrize("value", ["0", "6", "-1", "100"])
def test_it_refuses_a_point_outside_the_scale(scale, value):
    with pytest.raises(ValidationError, match="from 1 to 5"):
        scale.clean_answer({"value": value})


def test_a_scale_from_zero_accepts_zero(session):
    zero_based = add_activity(session, Kind.SCALE, scale_min=0, scale_max=10)

    assert zero_based.clean_answer({"value": "0"}) == 0
    assert zero_based.clean_answer({"value": "10"}) == 10


@pytest.mark.parametrize("data", [{"value": "three"}, {"value": "2.5"}, {"value": ""}])
def test_it_refuses_a_scale_answer_that_is_not_a_whole_number(scale, data):
    with pytest.raises(ValidationError, match="Pick one point"):
        scale.clean_answer(data)


@pytest.mark.parametrize("data", [{}, {"value": []}, {"value": ["2", "3"]}])
def test_it_refuses_a_scale_answer_with_no_point_or_several(scale, data):
    with pytest.raises(ValidationError, match="Pick one point"):
        scale.clean_answer(data)


@pytest.mark.parametrize("value", [3, [3], True, 3.0])
def test_it_refuses_scale_values_that_are_not_strings(scale, value):
    with pytest.raises(ValidationError, match="not in a form"):
        scale.clean_answer({"value": value})


# Checking answers: open text -----------------------------------------------------------------


@pytest.fixture
def open_text(session) -> Activity:
    return add_activity(session, Kind.OPEN_TEXT)


def test_open_text_is_stored_trimmed_with_its_line_breaks(open_text):
    typed = "  I felt   heard.\r\n\n\n\n  Thank you  "

    assert open_text.clean_answer({"text": typed}) == "I felt heard.\n\nThank you"


def test_open_text_drops_control_and_direction_changing_characters(open_text):
    typed = "safe\u202e txt.exe\u202c \u200bhidden\x00\x07 text\ufeff"

    assert open_text.clean_answer({"text": typed}) == "safe txt.exe hidden text"


def test_open_text_keeps_accents_and_emoji(open_text):
    typed = "Cafe\u0301 \u2764\ufe0f Gru\u0308\u00dfe"  # decomposed accents become composed

    assert open_text.clean_answer({"text": typed}) == "Caf\u00e9 \u2764\ufe0f Gr\u00fc\u00dfe"


def test_open_text_of_exactly_the_limit_is_kept_whole(open_text):
    typed = "a" * session_models.OPEN_TEXT_MAX_LENGTH

    assert open_text.clean_answer({"text": typed}) == typed


@pytest.mark.parametrize("length", [1001, 5000])
def test_it_refuses_open_text_far_over_the_limit(open_text, length):
    with pytest.raises(ValidationError, match="under 500 characters"):
        open_text.clean_answer({"text": "a" * length})


@pytest.mark.parametrize("length", [501, 700, 1000])
def test_it_refuses_open_text_just_over_the_limit_rather_than_cutting_it(open_text, length):
    # Cutting would silently drop the end of what the person wrote while telling them it was
    # saved; the refusal says the limit so they can shorten it themselves.
    with pytest.raises(ValidationError, match="under 500 characters"):
        open_text.clean_answer({"text": "a" * length})


@pytest.mark.parametrize(
    "data", [{}, {"text": ""}, {"text": "   \n\t "}, {"text": "\u200b\u202e"}, {"text": []}]
)
def test_it_refuses_empty_open_text(open_text, data):
    with pytest.raises(ValidationError, match="Write your answer"):
        open_text.clean_answer(data)


def test_it_refuses_two_open_texts_in_one_answer(open_text):
    with pytest.raises(ValidationError):
        open_text.clean_answer({"text": ["one", "two"]})


@pytest.mark.parametrize("text", [42, ["ok", 1], {"text": "hi"}, False])
def test_it_refuses_open_text_values_that_are_not_strings(open_text, text):
    with pytest.raises(ValidationError, match="not in a form"):
        open_text.clean_answer({"text": text})


# Checking answers: word cloud ----------------------------------------------------------------


@pytest.fixture
def word_cloud(session) -> Activity:
    return add_activity(session, Kind.WORD_CLOUD)


def test_a_single_word_is_stored_folded_to_lower_case(word_cloud):
    assert word_cloud.clean_answer({"word": "  Hope "}) == ["hope"]


def test_words_are_folded_so_case_and_spacing_do_not_matter(word_cloud):
    typed = ["Hope", " hope ", "HOPE", "new   \t beginnings", "New Beginnings", "Stra\u00dfe"]

    assert word_cloud.clean_answer({"word": typed}) == ["hope", "new beginnings", "strasse"]


def test_a_line_break_inside_a_word_entry_counts_as_a_space(word_cloud):
    # Tabs and carriage returns already become spaces; a bare line feed must not glue words.
    assert word_cloud.clean_answer({"word": "new\nbeginnings"}) == ["new beginnings"]
    assert clean_text("hope\ncalm", max_length=100) == "hope calm"


def test_blank_words_are_ignored(word_cloud):
    assert word_cloud.clean_answer({"word": ["", "  ", "calm"]}) == ["calm"]


def test_words_drop_invisible_characters(word_cloud):
    assert word_cloud.clean_answer({"word": ["ca\u200blm", "\u202ecalm"]}) == ["calm"]


def test_it_refuses_more_than_three_words(word_cloud):
    with pytest.raises(ValidationError, match="Up to 3 words"):
        word_cloud.clean_answer({"word": ["one", "two", "three", "four"]})


def test_four_entries_that_fold_to_three_words_are_accepted(word_cloud):
    assert word_cloud.clean_answer({"word": ["one", "two", "three", "ONE"]}) == [
        "one",
        "two",
        "three",
    ]


def test_it_refuses_a_word_over_thirty_characters(word_cloud):
    assert word_cloud.clean_answer({"word": "x" * 30}) == ["x" * 30]
    with pytest.raises(ValidationError, match="under 30 characters"):
        word_cloud.clean_answer({"word": "x" * 31})
    with pytest.raises(ValidationError, match="under 30 characters"):
        word_cloud.clean_answer({"word": "x" * 1000})


@pytest.mark.parametrize("data", [{}, {"word": []}, {"word": ["", "   "]}, {"word": "\u200b"}])
def test_it_refuses_a_word_cloud_answer_without_a_word(word_cloud, data):
    with pytest.raises(ValidationError, match="at least one word"):
        word_cloud.clean_answer(data)


@pytest.mark.parametrize("word", [7, ["calm", 7], {"w": "calm"}, True])
def test_it_refuses_word_values_that_are_not_strings(word_cloud, word):
    with pytest.raises(ValidationError, match="not in a form"):
        word_cloud.clean_answer({"word": word})


# Checking answers: instruction ---------------------------------------------------------------


def test_an_instruction_step_takes_no_answer(session):
    step = add_activity(session, Kind.INSTRUCTION, body="Breathe in for four counts.")

    assert not step.takes_answers
    with pytest.raises(ValidationError, match="does not take answers"):
        step.clean_answer({"text": "done"})


# Answering and passing -----------------------------------------------------------------------


def test_a_participant_answers_the_open_activity(live_session, choice_activity, participant):
    live_session.open_activity(choice_activity)

    answer = participant.answer(choice_activity.pk, {"choice": "1"})

    stored = Answer.objects.get(participant=participant, activity=choice_activity)
    assert stored == answer
    assert stored.value == [1]
    assert not stored.passed


def test_the_activity_id_may_arrive_as_text(live_session, choice_activity, participant):
    live_session.open_activity(choice_activity)

    participant.answer(str(choice_activity.pk), {"choice": "0"})

    assert Answer.objects.get(participant=participant).value == [0]


def test_changing_an_answer_overwrites_it(live_session, choice_activity, participant):
    live_session.open_activity(choice_activity)
    participant.answer(choice_activity.pk, {"choice": "0"})

    participant.answer(choice_activity.pk, {"choice": "2"})

    answers = Answer.objects.filter(participant=participant, activity=choice_activity)
    assert answers.count() == 1
    assert answers.get().value == [2]


def test_passing_after_answering_replaces_the_answer_with_a_pass(
    live_session, choice_activity, participant
):
    live_session.open_activity(choice_activity)
    participant.answer(choice_activity.pk, {"choice": "0"})

    participant.pass_on(choice_activity.pk)

    answer = Answer.objects.get(participant=participant, activity=choice_activity)
    assert answer.passed
    assert answer.value is None


def test_answering_after_passing_replaces_the_pass(live_session, choice_activity, participant):
    live_session.open_activity(choice_activity)
    participant.pass_on(choice_activity.pk)

    participant.answer(choice_activity.pk, {"choice": "1"})

    answer = Answer.objects.get(participant=participant, activity=choice_activity)
    assert not answer.passed
    assert answer.value == [1]


def test_an_invalid_answer_is_refused_with_the_reason_and_nothing_stored(
    live_session, choice_activity, participant
):
    live_session.open_activity(choice_activity)
    participant.answer(choice_activity.pk, {"choice": "0"})

    with pytest.raises(ActionRefused, match="not one of the options"):
        participant.answer(choice_activity.pk, {"choice": "7"})

    assert Answer.objects.get(participant=participant).value == [0]


def test_it_refuses_an_answer_to_a_closed_activity(live_session, choice_activity, participant):
    live_session.open_activity(choice_activity)
    live_session.close_activity()

    with pytest.raises(ActionRefused, match="closed"):
        participant.answer(choice_activity.pk, {"choice": "0"})
    with pytest.raises(ActionRefused, match="closed"):
        participant.pass_on(choice_activity.pk)

    assert not Answer.objects.exists()


def test_it_refuses_an_answer_to_an_activity_that_is_not_the_open_one(
    live_session, choice_activity, participant
):
    other = add_activity(live_session, Kind.OPEN_TEXT)
    live_session.open_activity(other)

    with pytest.raises(ActionRefused, match="closed"):
        participant.answer(choice_activity.pk, {"choice": "0"})

    assert not Answer.objects.exists()


def test_it_refuses_an_answer_to_another_sessions_activity(
    live_session, participant, other_facilitator
):
    other = Session.objects.create(facilitator=other_facilitator, title="Elsewhere")
    other.start()
    foreign = add_activity(other, Kind.SINGLE_CHOICE)
    other.open_activity(foreign)

    with pytest.raises(ActionRefused, match="not part of this session"):
        participant.answer(foreign.pk, {"choice": "0"})
    with pytest.raises(ActionRefused, match="not part of this session"):
        participant.pass_on(foreign.pk)

    assert not Answer.objects.exists()


@pytest.mark.parametrize("activity_id", [None, "", "abc", 0, -1, True, 2**63, "9999999"])
def test_it_refuses_an_answer_to_an_activity_that_does_not_exist(
    live_session, choice_activity, participant, activity_id
):
    live_session.open_activity(choice_activity)

    with pytest.raises(ActionRefused, match="not part of this session"):
        participant.answer(activity_id, {"choice": "0"})

    assert not Answer.objects.exists()


def test_it_refuses_an_answer_to_an_instruction_step(live_session, participant):
    step = add_activity(live_session, Kind.INSTRUCTION, body="Stretch.")
    live_session.open_activity(step)

    with pytest.raises(ActionRefused, match="does not take answers"):
        participant.answer(step.pk, {"text": "done"})
    with pytest.raises(ActionRefused, match="does not take answers"):
        participant.pass_on(step.pk)

    assert not Answer.objects.exists()


def test_it_refuses_an_answer_when_answers_are_locked(live_session, choice_activity, participant):
    live_session.open_activity(choice_activity)
    participant.answer(choice_activity.pk, {"choice": "0"})
    live_session.set_answers_locked(True)

    with pytest.raises(ActionRefused, match="locked"):
        participant.answer(choice_activity.pk, {"choice": "1"})
    with pytest.raises(ActionRefused, match="locked"):
        participant.pass_on(choice_activity.pk)

    answer = Answer.objects.get(participant=participant)
    assert answer.value == [0]
    assert not answer.passed


def test_it_takes_answers_again_once_unlocked(live_session, choice_activity, participant):
    live_session.open_activity(choice_activity)
    live_session.set_answers_locked(True)
    live_session.set_answers_locked(False)

    participant.answer(choice_activity.pk, {"choice": "1"})

    assert Answer.objects.get(participant=participant).value == [1]


def test_it_refuses_an_answer_when_the_session_has_ended(
    live_session, choice_activity, participant
):
    live_session.open_activity(choice_activity)
    live_session.end()

    with pytest.raises(ActionRefused, match="ended"):
        participant.answer(choice_activity.pk, {"choice": "0"})
    with pytest.raises(ActionRefused, match="ended"):
        participant.pass_on(choice_activity.pk)

    assert not Answer.objects.exists()


def test_it_refuses_an_answer_when_the_session_ended_with_the_activity_still_current(
    live_session, choice_activity, participant
):
    # Even if the current activity were somehow left set, an ended session takes no answers.
    live_session.open_activity(choice_activity)
    Session.objects.filter(pk=live_session.pk).update(status=Session.Status.ENDED)

    with pytest.raises(ActionRefused, match="ended"):
        participant.answer(choice_activity.pk, {"choice": "0"})

    assert not Answer.objects.exists()


# Join codes and text ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed", ["ABCDEF", "abcdef", " abc def ", "ABC-DEF", "a-b-c-d-e-f", "\tAbC\ndEf "]
)
def test_a_typed_join_code_ignores_case_spaces_and_dashes(typed):
    assert normalize_join_code(typed) == "ABCDEF"


def test_a_normalized_code_finds_its_live_session(live_session):
    typed = f" {live_session.join_code[:3].lower()}-{live_session.join_code[3:].lower()} "

    found = Session.objects.joinable().get(join_code=normalize_join_code(typed))

    assert found == live_session


def test_clean_text_collapses_spaces_and_tabs_onto_one_line():
    assert clean_text("  one\ttwo \n three\r\nfour  ", max_length=100) == "one two three four"


def test_clean_text_keeps_line_breaks_when_asked_but_at_most_one_blank_line():
    cleaned = clean_text("one\n\n\n\n\ntwo\r\nthree", max_length=100, keep_newlines=True)

    assert cleaned == "one\n\ntwo\nthree"


def test_clean_text_drops_bidi_overrides_zero_width_and_control_characters():
    typed = "a\u202eb\u202dc\u2066d\u2069e\u200bf\u200eg\ufeffh\x00i\x1bj\x7fk"

    assert clean_text(typed, max_length=100) == "abcdefghijk"


def test_clean_text_normalizes_to_composed_form():
    assert clean_text("e\u0301", max_length=10) == "\u00e9"


def test_clean_text_caps_the_length():
    assert clean_text("abcdefgh", max_length=5) == "abcde"
    assert clean_text("   abc   ", max_length=5) == "abc"


# Punctuation in the word cloud, emoji joined by zero-width joiners -------------------------------

# Emoji that are one picture made of several, glued by zero-width joiners (U+200D).
COUPLE = "\U0001f469\u200d\u2764\ufe0f\u200d\U0001f468"  # 👩‍❤️‍👨
RAINBOW_FLAG = "\U0001f3f3\ufe0f\u200d\U0001f308"  # 🏳️‍🌈
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # 👨‍👩‍👧‍👦
TECHNOLOGIST = "\U0001f469\U0001f3fd\u200d\U0001f4bb"  # 👩🏽‍💻, with a skin tone
PIRATE_FLAG = "\U0001f3f4\u200d\u2620\ufe0f"  # 🏴‍☠️
HEART_ON_FIRE = "\u2764\ufe0f\u200d\U0001f525"  # ❤️‍🔥


def test_punctuation_around_a_word_does_not_split_it_in_the_word_cloud(live_session):
    activity = add_activity(live_session, Kind.WORD_CLOUD)
    live_session.open_activity(activity)
    for typed in (["Hope!", "\u00a1Esperanza!"], ["hope", "esperanza"], ["(hope)", "calm..."]):
        participant, _ = live_session.add_participant()
        participant.answer(activity.pk, {"word": typed})

    result = summarize(activity, 3)

    assert [(word.text, word.count) for word in result.words] == [
        ("hope", 3),
        ("esperanza", 2),
        ("calm", 1),
    ]
    tallies = dict(activity.tallies.values_list("key", "count"))
    assert {key: count for key, count in tallies.items() if key.startswith("word:")} == {
        "word:hope": 3,
        "word:esperanza": 2,
        "word:calm": 1,
    }


def test_punctuation_inside_a_word_and_symbols_are_kept(word_cloud):
    typed = ["Self-care!", '"don\'t"', "<3"]

    assert word_cloud.clean_answer({"word": typed}) == ["self-care", "don't", "<3"]


def test_punctuation_around_each_word_of_an_entry_goes(word_cloud):
    typed = ["(new) beginnings!", "hope ... calm", "\u00bfY t\u00fa?"]

    assert word_cloud.clean_answer({"word": typed}) == ["new beginnings", "hope calm", "y t\u00fa"]


def test_a_word_of_punctuation_alone_is_not_a_word(word_cloud):
    assert word_cloud.clean_answer({"word": ["!!!", "calm", "...", "Calm?"]}) == ["calm"]
    with pytest.raises(ValidationError, match="at least one word"):
        word_cloud.clean_answer({"word": ["!!!", " ? "]})


def test_emoji_joined_by_zero_width_joiners_survive_clean_text():
    for emoji in (COUPLE, RAINBOW_FLAG, FAMILY, TECHNOLOGIST, PIRATE_FLAG, HEART_ON_FIRE):
        assert clean_text(emoji, max_length=100) == emoji
    typed = f"Proud {RAINBOW_FLAG}\nand loved {COUPLE}"
    assert clean_text(typed, max_length=100, keep_newlines=True) == typed


def test_a_zero_width_joiner_is_dropped_unless_it_joins_two_emoji():
    assert clean_text(f"ca\u200dlm {RAINBOW_FLAG}", max_length=100) == f"calm {RAINBOW_FLAG}"
    assert clean_text("\U0001f469\u200dx x\u200d\U0001f469", max_length=100) == (
        "\U0001f469x x\U0001f469"
    )
    assert clean_text("\U0001f469\u200d \U0001f468", max_length=100) == "\U0001f469 \U0001f468"
    assert clean_text("\u200d\U0001f469\u200d", max_length=100) == "\U0001f469"


def test_a_length_cap_inside_an_emoji_leaves_no_joiner_joining_nothing():
    assert clean_text(COUPLE, max_length=2) == "\U0001f469"


def test_the_word_cloud_counts_a_rainbow_flag_and_a_couple_as_one_word_each(live_session):
    activity = add_activity(live_session, Kind.WORD_CLOUD)
    live_session.open_activity(activity)
    for typed in ([RAINBOW_FLAG, COUPLE], [f"{RAINBOW_FLAG}!"], ["\U0001f3f3\ufe0f"]):
        participant, _ = live_session.add_participant()
        participant.answer(activity.pk, {"word": typed})

    result = summarize(activity, 3)

    assert [(word.text, word.count) for word in result.words] == [
        (RAINBOW_FLAG, 2),
        ("\U0001f3f3\ufe0f", 1),
        (COUPLE, 1),
    ]


def test_a_keycap_emoji_is_a_word_of_its_own_in_the_word_cloud():
    assert (
        strip_punctuation("#\ufe0f\u20e3 *\ufe0f\u20e3 #hope") == "#\ufe0f\u20e3 *\ufe0f\u20e3 hope"
    )


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        # A heading whose every line is a gap goes with them.
        ("RIGHT NOW\n- Emergency: [Your local emergency number]", ""),
        # A filled-in line stays, with its heading or without one.
        (
            "RIGHT NOW\n- Emergency: 112\n- Crisis line: [Your local crisis line]",
            "RIGHT NOW\n- Emergency: 112",
        ),
        (
            "Emergency services: 112\nCrisis line: [Your local crisis line]",
            "Emergency services: 112",
        ),
        # Paragraphs without a gap are untouched.
        ("Breathe out slowly.\n\nAsk [Facilitator name] after.", "Breathe out slowly."),
        ("Nothing to fill in [ok].", "Nothing to fill in [ok]."),
    ],
)
def test_the_group_sees_no_gap_left_to_fill_and_every_line_filled_in(body, shown):
    assert session_models.Activity(body=body).body_for_group == shown


@pytest.mark.parametrize(
    ("rounds", "largest_group", "rounds_to_run"),
    [(2, 2, 2), (2, 3, 3), (4, 3, 4), (1, 3, 1), (2, 0, 2)],
)
def test_where_roles_swap_each_member_of_a_larger_group_gets_a_round_to_lead(
    rounds, largest_group, rounds_to_run
):
    # Worked out each time, so an edit of the step's rounds after the draw counts at once.
    activity = Activity(rounds=rounds, largest_group=largest_group)

    assert activity.rounds_to_run == rounds_to_run
