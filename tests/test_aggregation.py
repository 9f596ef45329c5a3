"""summarize(): how the answers to one activity become what the projector and summary show."""

from __future__ import annotations

import pytest

from sessions.aggregation import WORD_SIZES, Bar, ProfileBar, Word, profile, summarize
from sessions.models import Activity, Answer, Participant, Session
from tests.conftest import add_activity

Kind = Activity.Kind
PASS = None


def respond(session: Session, activity: Activity, *answers) -> list[Participant]:
    """Open `activity` and have one new participant per item answer it (PASS passes)."""
    session.open_activity(activity)
    participants = []
    for data in answers:
        participant, _ = session.add_participant()
        if data is PASS:
            participant.pass_on(activity.pk)
        else:
            participant.answer(activity.pk, data)
        participants.append(participant)
    return participants


def pick(*indexes: int) -> dict:
    return {"choice": [str(index) for index in indexes]}


def bars(result) -> list[tuple[str, int, int]]:
    return [(bar.label, bar.count, bar.percent) for bar in result.bars]


# Choices ---------------------------------------------------------------------------------------


def test_single_choice_counts_and_percents(live_session, choice_activity):
    respond(live_session, choice_activity, pick(0), pick(0), pick(1), pick(0))

    result = summarize(choice_activity, live_session.anonymity_threshold)

    assert bars(result) == [("Yes", 3, 75), ("No", 1, 25), ("Not sure", 0, 0)]
    assert result.answered == 4
    assert result.passed == 0


def test_single_choice_percents_are_rounded_to_whole_numbers(live_session, choice_activity):
    respond(live_session, choice_activity, pick(0), pick(1), pick(1))

    result = summarize(choice_activity, 3)

    assert bars(result) == [("Yes", 1, 33), ("No", 2, 67), ("Not sure", 0, 0)]


def test_tied_options_show_equal_bars_in_the_agenda_order(live_session, choice_activity):
    respond(live_session, choice_activity, pick(2), pick(1), pick(2), pick(1))

    result = summarize(choice_activity, 3)

    assert bars(result) == [("Yes", 0, 0), ("No", 2, 50), ("Not sure", 2, 50)]


def test_multiple_choice_percents_are_of_the_people_who_answered(live_session):
    activity = add_activity(live_session, Kind.MULTIPLE_CHOICE)
    respond(live_session, activity, pick(0, 1), pick(0), pick(0, 1, 2), pick(1))

    result = summarize(activity, 3)

    assert bars(result) == [("Yes", 3, 75), ("No", 3, 75), ("Not sure", 1, 25)]
    assert result.answered == 4
    assert sum(bar.percent for bar in result.bars) > 100


def test_multiple_choice_where_everyone_picks_everything_shows_every_bar_full(live_session):
    activity = add_activity(live_session, Kind.MULTIPLE_CHOICE)
    respond(live_session, activity, pick(0, 1, 2), pick(0, 1, 2))

    result = summarize(activity, 2)

    assert [bar.percent for bar in result.bars] == [100, 100, 100]


def test_emotion_check_in_counts_each_feeling(live_session):
    activity = add_activity(live_session, Kind.EMOTION)  # Calm, Anxious, Hopeful
    respond(live_session, activity, pick(0, 1), pick(0), pick(0, 2), PASS)

    result = summarize(activity, 3)

    assert bars(result) == [("Calm", 3, 100), ("Anxious", 1, 33), ("Hopeful", 1, 33)]
    assert result.answered == 3
    assert result.passed == 1


def test_passes_are_counted_apart_and_not_in_the_percents(live_session, choice_activity):
    respond(live_session, choice_activity, pick(0), pick(1), PASS, PASS, PASS)

    result = summarize(choice_activity, 3)

    assert result.answered == 2
    assert result.passed == 3
    assert bars(result) == [("Yes", 1, 50), ("No", 1, 50), ("Not sure", 0, 0)]


def test_only_passes_gives_empty_bars_without_dividing_by_zero(live_session, choice_activity):
    respond(live_session, choice_activity, PASS, PASS)

    result = summarize(choice_activity, 3)

    assert result.answered == 0
    assert result.passed == 2
    assert bars(result) == [("Yes", 0, 0), ("No", 0, 0), ("Not sure", 0, 0)]


def test_a_changed_answer_is_counted_once_as_its_latest_value(live_session, choice_activity):
    changer, _ = respond(live_session, choice_activity, pick(0), pick(1))

    changer.answer(choice_activity.pk, pick(1))
    changer.answer(choice_activity.pk, pick(2))

    result = summarize(choice_activity, 2)
    assert result.answered == 2
    assert bars(result) == [("Yes", 0, 0), ("No", 1, 50), ("Not sure", 1, 50)]


def test_an_answer_changed_to_a_pass_leaves_the_counts(live_session, choice_activity):
    changer, _, _ = respond(live_session, choice_activity, pick(0), pick(0), pick(1))

    changer.pass_on(choice_activity.pk)

    result = summarize(choice_activity, 3)
    assert result.answered == 2
    assert result.passed == 1
    assert bars(result) == [("Yes", 1, 50), ("No", 1, 50), ("Not sure", 0, 0)]


def test_answers_to_other_activities_are_not_counted(live_session, choice_activity):
    other = add_activity(live_session, Kind.SINGLE_CHOICE, "Another question")
    respond(live_session, other, pick(0), pick(0), pick(0))
    respond(live_session, choice_activity, pick(1))

    result = summarize(choice_activity, 3)

    assert result.answered == 1
    assert bars(result) == [("Yes", 0, 0), ("No", 1, 100), ("Not sure", 0, 0)]


# Scale -------------------------------------------------------------------------------------------


def test_scale_shows_a_bar_for_every_point_with_mean_and_median(live_session):
    activity = add_activity(live_session, Kind.SCALE, scale_min=1, scale_max=5)
    respond(live_session, activity, {"value": "1"}, {"value": "2"}, {"value": "2"}, PASS)

    result = summarize(activity, 3)

    assert bars(result) == [("1", 1, 33), ("2", 2, 67), ("3", 0, 0), ("4", 0, 0), ("5", 0, 0)]
    assert result.mean == 1.7
    assert result.median == 2
    assert result.answered == 3
    assert result.passed == 1


def test_scale_median_of_an_even_count_is_halfway_between_the_middle_two(live_session):
    activity = add_activity(live_session, Kind.SCALE, scale_min=1, scale_max=10)
    respond(live_session, activity, {"value": "3"}, {"value": "10"}, {"value": "5"}, {"value": "6"})

    result = summarize(activity, 3)

    assert result.median == 5.5
    assert result.mean == 6.0


def test_scale_from_zero_includes_the_zero_bar(live_session):
    activity = add_activity(live_session, Kind.SCALE, scale_min=0, scale_max=4)
    respond(live_session, activity, {"value": "0"}, {"value": "0"}, {"value": "4"})

    result = summarize(activity, 3)

    assert [bar.label for bar in result.bars] == ["0", "1", "2", "3", "4"]
    assert result.bars[0] == Bar("0", 2, 67)
    assert result.mean == 1.3
    assert result.median == 0


def test_scale_without_answers_has_no_mean_or_median(live_session):
    activity = add_activity(live_session, Kind.SCALE, scale_min=1, scale_max=3)
    respond(live_session, activity, PASS)

    result = summarize(activity, 3)

    assert result.mean is None
    assert result.median is None
    assert bars(result) == [("1", 0, 0), ("2", 0, 0), ("3", 0, 0)]


def test_a_changed_scale_answer_moves_to_its_new_point(live_session):
    activity = add_activity(live_session, Kind.SCALE, scale_min=1, scale_max=3)
    (changer,) = respond(live_session, activity, {"value": "1"})

    changer.answer(activity.pk, {"value": "3"})

    result = summarize(activity, 3)
    assert bars(result) == [("1", 0, 0), ("2", 0, 0), ("3", 1, 100)]
    assert result.mean == 3.0


# Word cloud --------------------------------------------------------------------------------------


def test_word_cloud_counts_words_across_spelling_and_sizes_them_by_frequency(live_session):
    activity = add_activity(live_session, Kind.WORD_CLOUD)
    respond(
        live_session,
        activity,
        {"word": ["Hope", "calm"]},
        {"word": [" hope ", "tired", "Calm"]},
        {"word": ["HOPE", "alone"]},
        PASS,
    )

    result = summarize(activity, 3)

    assert result.words == [
        Word("hope", 3, WORD_SIZES),
        Word("calm", 2, 3),
        Word("alone", 1, 1),
        Word("tired", 1, 1),
    ]
    assert result.answered == 3
    assert result.passed == 1


def test_the_most_frequent_word_is_biggest_and_the_rarest_smallest(live_session):
    activity = add_activity(live_session, Kind.WORD_CLOUD)
    respond(
        live_session,
        activity,
        *([{"word": ["together"]}] * 5),
        {"word": ["apart"]},
    )

    result = summarize(activity, 3)

    assert result.words[0] == Word("together", 5, WORD_SIZES)
    assert result.words[-1] == Word("apart", 1, 1)


def test_tied_words_are_listed_alphabetically(live_session):
    activity = add_activity(live_session, Kind.WORD_CLOUD)
    respond(
        live_session,
        activity,
        {"word": ["zest", "moon", "apple"]},
        {"word": ["moon", "zest", "apple"]},
        {"word": ["kind"]},
    )

    result = summarize(activity, 3)

    assert [word.text for word in result.words] == ["apple", "moon", "zest", "kind"]
    assert [word.size for word in result.words] == [WORD_SIZES, WORD_SIZES, WORD_SIZES, 1]


def test_words_all_said_once_are_all_the_middle_size(live_session):
    activity = add_activity(live_session, Kind.WORD_CLOUD)
    respond(live_session, activity, {"word": ["rain", "sun"]}, {"word": ["fog"]})

    result = summarize(activity, 3)

    assert result.words == [Word("fog", 1, 3), Word("rain", 1, 3), Word("sun", 1, 3)]
    assert (WORD_SIZES + 1) // 2 == 3


def test_a_changed_word_cloud_answer_replaces_the_old_words(live_session):
    activity = add_activity(live_session, Kind.WORD_CLOUD)
    (changer,) = respond(live_session, activity, {"word": ["sad"]})

    changer.answer(activity.pk, {"word": ["better", "lighter"]})

    result = summarize(activity, 3)
    assert [word.text for word in result.words] == ["better", "lighter"]
    assert result.answered == 1


def test_word_cloud_without_answers_has_no_words(live_session):
    activity = add_activity(live_session, Kind.WORD_CLOUD)
    respond(live_session, activity, PASS)

    assert summarize(activity, 3).words == []


# Open text ---------------------------------------------------------------------------------------


def moderate(activity: Activity, *texts: str, to=Answer.Moderation.APPROVED) -> None:
    for answer in activity.answers.filter(value__in=texts):
        activity.session.moderate(answer.pk, to)


def test_open_text_shows_only_approved_texts_without_pseudonyms(live_session):
    activity = add_activity(live_session, Kind.OPEN_TEXT)
    texts = ["more silence,\nplease.", "I felt listened to.", "Being heard", "Tea", "Less", "Hope"]
    respond(live_session, activity, *({"text": text} for text in texts), PASS)

    result = summarize(activity, 3)
    assert not result.hidden
    assert result.texts == []  # nothing is approved yet
    assert result.awaiting_approval == 6

    moderate(activity, "more silence,\nplease.", "Being heard", "Hope")
    result = summarize(activity, 3)

    assert sorted(result.texts) == sorted(["more silence,\nplease.", "Being heard", "Hope"])
    assert result.awaiting_approval == 3
    assert result.answered == 6
    assert result.passed == 1
    # The facilitator moderates every text in the order it came; the pseudonyms never appear.
    assert [text.text for text in result.to_moderate] == texts
    assert all(
        participant.pseudonym not in str(result) for participant in live_session.participants.all()
    )


def test_approved_texts_keep_a_shuffled_order_that_new_approvals_do_not_disturb(live_session):
    activity = add_activity(live_session, Kind.OPEN_TEXT)
    texts = [f"answer number {number}" for number in range(12)]
    respond(live_session, activity, *({"text": text} for text in texts))
    moderate(activity, *texts[:11])

    before = summarize(activity, 3).texts
    moderate(activity, texts[11])
    after = summarize(activity, 3).texts

    # Not the order they arrived in (one chance in 40 million of that by luck) ...
    assert before != texts[:11]
    # ... and a newly shown text slots in without reordering the others on the projector.
    assert [text for text in after if text != texts[11]] == before
    assert summarize(activity, 3).texts == after


def test_a_hidden_text_leaves_the_projector_and_can_be_shown_again(live_session):
    activity = add_activity(live_session, Kind.OPEN_TEXT)
    texts = ["one", "two", "three", "four", "five"]
    respond(live_session, activity, *({"text": text} for text in texts))
    moderate(activity, *texts)

    moderate(activity, "three", to=Answer.Moderation.HIDDEN)
    assert "three" not in summarize(activity, 3).texts
    assert len(summarize(activity, 3).texts) == 4

    moderate(activity, "three")
    assert "three" in summarize(activity, 3).texts


def test_open_text_needs_five_answers_even_when_the_session_threshold_is_lower(live_session):
    activity = add_activity(live_session, Kind.OPEN_TEXT)
    respond(live_session, activity, *({"text": f"text {n}"} for n in range(4)))
    moderate(activity, *(f"text {n}" for n in range(4)))

    result = summarize(activity, 3)
    assert result.hidden
    assert result.threshold == 5

    fifth, _ = live_session.add_participant()
    fifth.answer(activity.pk, {"text": "text 4"})
    assert not summarize(activity, 3).hidden
    # A session threshold above five still counts.
    assert summarize(activity, 6).hidden


def test_auto_approve_shows_texts_without_moderation(live_session):
    live_session.auto_approve = True
    live_session.save()
    activity = add_activity(live_session, Kind.OPEN_TEXT)
    texts = ["one", "two", "three", "four", "five"]
    respond(live_session, activity, *({"text": text} for text in texts))

    assert sorted(summarize(activity, 3).texts) == sorted(texts)


def test_a_changed_open_text_waits_for_approval_again(live_session):
    activity = add_activity(live_session, Kind.OPEN_TEXT)
    writers = respond(live_session, activity, *({"text": f"text {n}"} for n in range(5)))
    moderate(activity, *(f"text {n}" for n in range(5)))

    writers[0].answer(activity.pk, {"text": "what I meant"})

    result = summarize(activity, 3)
    assert "text 0" not in result.texts
    assert "what I meant" not in result.texts
    assert result.awaiting_approval == 1


# Hiding results until enough people answered ----------------------------------------------------


def test_results_are_hidden_below_the_session_threshold(live_session, choice_activity):
    assert live_session.anonymity_threshold == 3
    respond(live_session, choice_activity, pick(0), pick(1))

    result = summarize(choice_activity, live_session.anonymity_threshold)

    assert result.hidden


def test_results_show_once_the_session_threshold_is_reached(live_session, choice_activity):
    respond(live_session, choice_activity, pick(0), pick(1), pick(0))

    result = summarize(choice_activity, live_session.anonymity_threshold)

    assert not result.hidden


def test_passes_do_not_count_towards_showing_results(live_session, choice_activity):
    respond(live_session, choice_activity, pick(0), pick(1), PASS, PASS, PASS)

    result = summarize(choice_activity, live_session.anonymity_threshold)

    assert result.hidden


@pytest.mark.parametrize(("answers", "hidden"), [(4, True), (5, False), (6, False)])
def test_a_higher_session_threshold_hides_results_longer(live_session, answers, hidden):
    live_session.anonymity_threshold = 5
    live_session.save(update_fields=["anonymity_threshold"])
    activity = add_activity(live_session, Kind.OPEN_TEXT)
    respond(live_session, activity, *[{"text": f"answer {n}"} for n in range(answers)])

    result = summarize(activity, Session.objects.get(pk=live_session.pk).anonymity_threshold)

    assert result.hidden is hidden


@pytest.mark.parametrize("kind", [Kind.SCALE, Kind.WORD_CLOUD, Kind.EMOTION])
def test_every_kind_is_hidden_below_the_threshold(live_session, kind):
    activity = add_activity(live_session, kind)
    data = {
        Kind.SCALE: {"value": "4"},
        Kind.WORD_CLOUD: {"word": "calm"},
        Kind.EMOTION: pick(0),
    }[kind]
    respond(live_session, activity, data, data)

    assert summarize(activity, 3).hidden
    respond(live_session, activity, data)
    assert not summarize(activity, 3).hidden


# Group profile of a self-check ------------------------------------------------------------------


def test_a_profile_shows_the_mean_of_each_scale_where_it_sits_on_the_scale(live_session):
    calm = add_activity(live_session, Kind.SCALE, "Calm: I stay calm", scale_min=1, scale_max=5)
    open_ = add_activity(live_session, Kind.SCALE, "Openness", scale_min=1, scale_max=5)
    respond(live_session, calm, {"value": "5"}, {"value": "4"}, {"value": "3"})
    respond(live_session, open_, {"value": "2"}, PASS, {"value": "1"})

    bars = profile([calm, open_], 3)

    assert bars[0] == ProfileBar("Calm", 4.0, 75)
    # Only two answers: the part stays hidden rather than pointing at someone.
    assert bars[1] == ProfileBar("Openness", None, 0)


def test_a_flagged_answer_does_not_count_towards_showing_results(live_session):
    activity = add_activity(live_session, Kind.OPEN_TEXT)
    respond(
        live_session,
        activity,
        {"text": "Work is a lot"},
        {"text": "Sleep, mostly"},
        {"text": "some days I want to die"},
    )

    result = summarize(activity, 3)

    # Showing two texts as "three answers" would tell the room something was held back.
    assert result.hidden
    assert result.shown_count == 2
    assert result.flagged == ["some days I want to die"]
    assert "some days I want to die" not in result.texts


def test_a_flagged_answer_stays_out_of_the_count_once_the_answers_are_deleted(live_session):
    activity = add_activity(live_session, Kind.WORD_CLOUD)
    respond(
        live_session,
        activity,
        {"word": "calm"},
        {"word": "tired"},
        {"word": "hopeful"},
        {"word": "suicidal"},
    )
    live_session.end()

    live_session.delete_raw_answers()
    result = summarize(activity, 3)

    # The texts are gone with the answers; the count of flagged ones is kept in the tallies.
    assert (result.answered, result.flagged_count, result.shown_count) == (4, 1, 3)
    assert result.flagged == []
    assert not result.hidden
