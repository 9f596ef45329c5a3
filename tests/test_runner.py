"""Leading the led steps over real WebSockets: pair rounds, the countdown, question cards, the
breathing pacer, the safety flag, and what only the facilitator may do or see."""

from __future__ import annotations

import asyncio
import html
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection, transaction
from django.utils import timezone

from sessions import batches, presence
from sessions.aggregation import summarize
from sessions.models import (
    ActionRefused,
    Activity,
    Answer,
    PairAssignment,
    Participant,
    ServerProcess,
    Session,
    participant_cookie,
)
from sessions.safety import needs_care
from sessions.templatetags.attune import clock
from tests.conftest import add_activity
from tests.test_consumers import (
    control_view,
    open_activity,
    open_socket,
    projector_view,
    receive_until,
    send,
)

pytestmark = pytest.mark.django_db(transaction=True)

CARDS = [
    "When did you last feel truly listened to?",
    "What is a small kindness you still remember?",
    "Who would you call at 3 a.m.?",
    "What do you wish people asked you more often?",
]
SCRIPT = "Read the room slowly; invite the quiet ones by name only if they nodded."
CRISIS_TEXT = "Some days I want to die"


# Helpers -----------------------------------------------------------------------------------


@dataclass
class Phone:
    socket: WebsocketCommunicator
    participant: Participant
    token: str
    stage: str  # the first stage the phone was shown


def phone_cookie(session: Session, token: str) -> tuple[bytes, bytes]:
    return (b"cookie", f"{participant_cookie(session.join_code)}={token}".encode())


async def phone_joins(session: Session) -> Phone:
    participant, token = await database_sync_to_async(session.add_participant)()
    socket = await open_socket(f"/ws/join/{session.join_code}/", phone_cookie(session, token))
    return Phone(socket, participant, token, await socket.receive_from())


async def phone_reconnects(session: Session, phone: Phone) -> Phone:
    socket = await open_socket(f"/ws/join/{session.join_code}/", phone_cookie(session, phone.token))
    return Phone(socket, phone.participant, phone.token, await socket.receive_from())


async def disconnect(*sockets: WebsocketCommunicator | Phone) -> None:
    for socket in sockets:
        await (socket.socket if isinstance(socket, Phone) else socket).disconnect()


async def frames_until_quiet(socket: WebsocketCommunicator, quiet: float = 0.5) -> list[str]:
    """Every frame that arrives until none has come for `quiet` seconds.

    (A receive that times out cancels the application, so wait with receive_nothing.)
    """
    frames = []
    while not await socket.receive_nothing(timeout=quiet):
        frames.append(await socket.receive_from())
    return frames


async def refusal(control: WebsocketCommunicator, message: str) -> str:
    """The error frame the control view gets for a refused action."""
    frame = await receive_until(control, message)
    assert frame.startswith('<div id="notice" class="notice error"'), frame
    return frame


async def recorded_until(
    socket: WebsocketCommunicator, text: str, record: list[str], timeout: float = 3
) -> str:
    """Like receive_until, but every frame read, skipped or not, is kept in `record`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            frame = await socket.receive_from(timeout=left)
        except TimeoutError:
            break
        record.append(frame)
        if text in frame:
            return frame
    raise AssertionError(f"no frame with {text!r} within {timeout}s; got {record!r}")


GROUP = re.compile(r'<ul class="group">(.*?)</ul>', re.S)
MEMBER = re.compile(r"<li( class=\"me\")?>(.*?)</li>", re.S)


def group_shown(stage: str) -> dict[str, str]:
    """The group a phone's stage lists: each member's name and role, under "You" for the
    phone itself, which it shows as "You (its own nickname)" to say aloud."""
    match = GROUP.search(stage)
    assert match, f"no group on {stage!r}"
    members = {}
    for me, item in MEMBER.findall(match.group(1)):
        name, _, role = html.unescape(re.sub(r"<[^>]+>", "", item)).partition(" · ")
        if me:  # "You (its own nickname)"
            name = "You"
        members[name.strip()] = role.strip()
    return members


def countdown(frame: str) -> int:
    match = re.search(r'data-countdown="(\d+)"', frame)
    assert match, f"no running countdown in {frame!r}"
    return int(match.group(1))


def pacer(frame: str) -> tuple[int, int, float]:
    match = re.search(
        r'data-pacer data-inhale="(\d+)" data-exhale="(\d+)" data-elapsed="([\d.]+)"', frame
    )
    assert match, f"no pacer in {frame!r}"
    return int(match.group(1)), int(match.group(2)), float(match.group(3))


def card_shown(frame: str) -> str:
    match = re.search(r'<blockquote class="question-card">(.*?)</blockquote>', frame, re.S)
    assert match, f"no card in {frame!r}"
    return html.unescape(match.group(1))


def paused_timer(seconds: int) -> str:
    return f'<span role="timer">{clock(seconds)}</span> <span class="timer-note">paused</span>'


@database_sync_to_async
def fresh_session(session: Session) -> Session:
    return Session.objects.get(pk=session.pk)


@database_sync_to_async
def fresh_activity(activity: Activity) -> Activity:
    return Activity.objects.get(pk=activity.pk)


def groups_of(activity: Activity) -> list[list[int]]:
    """The participant ids of each group of a pair round, group by group."""
    groups: dict[int, list[int]] = {}
    for row in PairAssignment.objects.filter(activity=activity):
        groups.setdefault(row.group, []).append(row.participant_id)
    return list(groups.values())


groups_in = database_sync_to_async(groups_of)


def partners(groups: list[list[int]]) -> set[frozenset[int]]:
    return {frozenset((a, b)) for group in groups for a in group for b in group if a < b}


@database_sync_to_async
def set_timer_ends_in(session: Session, seconds: float) -> None:
    Session.objects.filter(pk=session.pk).update(
        timer_ends_at=timezone.now() + timedelta(seconds=seconds), timer_paused_seconds=None
    )


async def add(session: Session, kind: str, prompt: str = "How are you?", **fields) -> Activity:
    return await database_sync_to_async(add_activity)(session, kind, prompt, **fields)


async def add_pair_round(session: Session, prompt: str = "Talk in pairs", **fields) -> Activity:
    fields = {
        "body": "Talk",
        "roles": ["Speaker", "Listener"],
        "rounds": 2,
        "timer_seconds": 120,
        **fields,
    }
    return await add(session, Activity.Kind.PAIR_ROUND, prompt, **fields)


async def phones_joined(session: Session, number: int) -> list[Phone]:
    return [await phone_joins(session) for _ in range(number)]


async def pairs_drawn(
    session: Session, facilitator, activity: Activity
) -> tuple[list[Phone], WebsocketCommunicator]:
    """Four phones joined, the pair round open and drawn, each phone shown its first round."""
    await open_activity(session, activity)
    phones = await phones_joined(session, 4)
    control, _ = await control_view(session, facilitator)
    await send(control, action="draw_pairs")
    for phone in phones:
        await receive_until(phone.socket, "Round 1 of 2")
    return phones, control


# Pair rounds -------------------------------------------------------------------------------


async def test_drawing_pairs_puts_four_phones_in_two_pairs_of_one_speaker_and_one_listener(
    live_session, facilitator
):
    activity = await add_pair_round(live_session)
    await open_activity(live_session, activity)
    phones = await phones_joined(live_session, 4)
    assert all("Pairs will be drawn in a moment" in phone.stage for phone in phones)
    control, _ = await control_view(live_session, facilitator)

    await send(control, action="draw_pairs")
    stages = {
        phone.participant.pk: await receive_until(phone.socket, "Round 1 of 2") for phone in phones
    }
    shown = {member: group_shown(stage) for member, stage in stages.items()}
    names = {phone.participant.pk: phone.participant.pseudonym for phone in phones}
    # Each phone gives its own nickname too, to say aloud when finding the partner.
    assert all(f"You ({names[member]})" in html.unescape(stages[member]) for member in names)
    groups = await groups_in(activity)
    assert sorted(len(group) for group in groups) == [2, 2]
    for group in groups:
        for member in group:
            (partner,) = [other for other in group if other != member]
            assert set(shown[member]) == {"You", names[partner]}
            # What a phone says its partner does is what the partner's own phone says.
            assert shown[member][names[partner]] == shown[partner]["You"]
        assert sorted(shown[member]["You"] for member in group) == ["Listener", "Speaker"]
    assert "2 groups" in await receive_until(control, "Round 1 of 2")
    await disconnect(*phones, control)


async def test_the_projector_tells_people_to_find_their_partner_but_names_no_one(
    live_session, facilitator
):
    activity = await add_pair_round(live_session)
    await open_activity(live_session, activity)
    phones = await phones_joined(live_session, 4)
    projector, _ = await projector_view(live_session, facilitator)
    control, _ = await control_view(live_session, facilitator)
    await send(control, action="draw_pairs")
    frame = await receive_until(projector, "Find your partner")
    assert "Round 1 of 2" in frame
    for phone in phones:
        assert phone.participant.pseudonym not in frame
    await disconnect(*phones, projector, control)


async def test_five_phones_make_one_pair_and_one_triad_with_one_speaker_each(
    live_session, facilitator
):
    activity = await add_pair_round(live_session)
    await open_activity(live_session, activity)
    phones = await phones_joined(live_session, 5)
    control, _ = await control_view(live_session, facilitator)

    await send(control, action="draw_pairs")
    # A round more than the two planned, so that each of the triad speaks once.
    shown_on = {
        phone.participant.pk: group_shown(await receive_until(phone.socket, "Round 1 of 3"))
        for phone in phones
    }
    groups = {tuple(group) for group in await groups_in(activity)}
    assert sorted(len(group) for group in groups) == [2, 3]
    for phone in phones:
        shown = shown_on[phone.participant.pk]
        (group,) = [group for group in groups if phone.participant.pk in group]
        assert len(shown) == len(group)
        assert list(shown.values()).count("Speaker") == 1
        assert list(shown.values()).count("Listener") == len(group) - 1
    assert "(with a triad)" in await receive_until(control, "Round 1 of 3")
    await disconnect(*phones, control)


async def test_each_of_a_triad_takes_the_first_role_once_in_a_round_more(live_session, facilitator):
    activity = await add_pair_round(live_session)
    await open_activity(live_session, activity)
    phones = await phones_joined(live_session, 3)
    control, _ = await control_view(live_session, facilitator)
    await send(control, action="draw_pairs")
    speakers = []
    for round_ in (1, 2, 3):
        if round_ > 1:
            await send(control, action="next_round")
        roles = [
            group_shown(await receive_until(phone.socket, f"Round {round_} of 3"))["You"]
            for phone in phones
        ]
        assert roles.count("Speaker") == 1
        speakers.append(roles.index("Speaker"))
    assert sorted(speakers) == [0, 1, 2]
    assert "more rounds than planned" in await receive_until(control, "Round 3 of 3")
    await send(control, action="next_round")
    await refusal(control, "That was the last round.")
    await disconnect(*phones, control)


async def test_the_next_round_swaps_roles_and_the_round_after_the_last_is_refused(
    live_session, facilitator
):
    activity = await add_pair_round(live_session)
    await open_activity(live_session, activity)
    phones = await phones_joined(live_session, 4)
    control, _ = await control_view(live_session, facilitator)
    await send(control, action="draw_pairs")
    first = {
        phone.participant.pk: group_shown(await receive_until(phone.socket, "Round 1 of 2"))
        for phone in phones
    }
    assert "Next round: swap roles" in await receive_until(control, "Round 1 of 2")

    await send(control, action="next_round")
    for phone in phones:
        second = group_shown(await receive_until(phone.socket, "Round 2 of 2"))
        assert set(second) == set(first[phone.participant.pk]), "the partner stays the same"
        assert (
            second["You"]
            == {"Speaker": "Listener", "Listener": "Speaker"}[first[phone.participant.pk]["You"]]
        )
    assert "Next round: swap roles" not in await receive_until(control, "Round 2 of 2")

    await send(control, action="next_round")
    await refusal(control, "That was the last round.")
    assert (await fresh_activity(activity)).current_round == 2
    for phone in phones:
        assert await phone.socket.receive_nothing(timeout=0.2)
    await disconnect(*phones, control)


async def test_a_phone_that_connects_after_the_draw_joins_a_group_and_its_partners_see_it(
    live_session, facilitator
):
    activity = await add_pair_round(live_session)
    phones, control = await pairs_drawn(live_session, facilitator, activity)

    late = await phone_joins(live_session)
    late_group = group_shown(late.stage)
    assert late_group["You"] in {"Speaker", "Listener"}
    groups = await groups_in(activity)
    assert sorted(len(group) for group in groups) == [2, 3]
    (triad,) = [group for group in groups if late.participant.pk in group]
    for phone in phones:
        if phone.participant.pk in triad:
            stage = await receive_until(phone.socket, late.participant.pseudonym)
            assert len(group_shown(stage)) == 3
            assert phone.participant.pseudonym in late_group
        else:
            stage = await receive_until(phone.socket, "phone-stage")
            assert late.participant.pseudonym not in stage
            assert len(group_shown(stage)) == 2
    assert list(group_shown(late.stage).values()).count("Speaker") == 1
    await receive_until(control, "(with a triad)")
    await disconnect(*phones, late, control)


async def test_phones_that_connect_together_after_the_draw_are_each_placed_in_a_group(
    live_session, facilitator
):
    # Sockets opened at the same moment are counted together (sessions/batches.py): each
    # late phone still gets a group of its own choosing, the smallest at its turn.
    activity = await add_pair_round(live_session)
    phones, control = await pairs_drawn(live_session, facilitator, activity)
    late = [await database_sync_to_async(live_session.add_participant)() for _ in range(2)]

    outcomes = await database_sync_to_async(batches._open_sockets)(
        [batches.Opening(participant, "en") for participant, _ in late]
    )

    groups = await groups_in(activity)
    assert sorted(len(group) for group in groups) == [3, 3]
    for (participant, _), (ok, (_, stage)) in zip(late, outcomes, strict=True):
        assert ok
        shown = group_shown(stage)
        assert len(shown) == 3 and shown["You"] in {"Speaker", "Listener"}
        assert any(participant.pk in group for group in groups)
    for phone in phones:  # every drawn phone sees its newcomer, and a round more for them
        assert len(group_shown(await receive_until(phone.socket, "Round 1 of 3"))) == 3
    await disconnect(*phones, control)


def test_a_phone_connecting_while_pairs_are_drawn_is_placed_once_the_draw_is_done(live_session):
    # The draw holds the session's lock; the late phone's socket waits for it, then must see
    # the pair round as the draw left it (on PostgreSQL, a read in the same statement as the
    # lock saw it as it was before, and the phone was neither drawn nor placed).
    presence.beat()
    activity = add_activity(
        live_session,
        Activity.Kind.PAIR_ROUND,
        "Talk in pairs",
        body="Talk",
        roles=["Speaker", "Listener"],
        rounds=2,
        timer_seconds=120,
    )
    live_session.open_activity(activity)
    for _ in range(4):
        live_session.add_participant()[0].connected(presence.SERVER_ID)
    late, _ = live_session.add_participant()
    drawing = threading.Event()

    def draw() -> None:
        try:
            with transaction.atomic():
                Session.objects.select_for_update().get(pk=live_session.pk).draw_pairs()
                drawing.set()
                time.sleep(0.5)  # the late phone's socket queues for the lock meanwhile
        finally:
            connection.close()

    def connect_late() -> list:
        drawing.wait(5)
        try:
            return batches._open_sockets([batches.Opening(late, "en")])
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        drawn = pool.submit(draw)
        connected = pool.submit(connect_late)
        drawn.result()
        [(ok, (_connection_id, stage))] = connected.result()

    assert ok
    groups = groups_of(activity)
    assert sorted(len(group) for group in groups) == [2, 3]
    assert any(late.pk in group for group in groups)
    assert len(group_shown(stage)) == 3


async def test_a_second_pair_round_gives_everyone_a_new_partner(live_session, facilitator):
    first_round = await add_pair_round(live_session, prompt="First talk")
    second_round = await add_pair_round(live_session, prompt="Second talk")
    phones, control = await pairs_drawn(live_session, facilitator, first_round)
    before = partners(await groups_in(first_round))

    await send(control, action="open", activity=str(second_round.pk))
    for phone in phones:
        await receive_until(phone.socket, "Pairs will be drawn in a moment")
    await send(control, action="draw_pairs")
    names = {phone.participant.pk: phone.participant.pseudonym for phone in phones}
    shown_on = {
        phone.participant.pk: group_shown(await receive_until(phone.socket, "Round 1 of 2"))
        for phone in phones
    }
    after_groups = await groups_in(second_round)
    assert sorted(len(group) for group in after_groups) == [2, 2]
    assert partners(after_groups).isdisjoint(before)
    for phone in phones:
        shown = shown_on[phone.participant.pk]
        (old_pair,) = [pair for pair in before if phone.participant.pk in pair]
        (old_partner,) = old_pair - {phone.participant.pk}
        assert names[old_partner] not in shown
        assert len(shown) == 2
    await disconnect(*phones, control)


def test_three_pair_rounds_of_four_people_use_every_possible_pairing_once(live_session):
    people = [live_session.add_participant()[0] for _ in range(4)]
    ServerProcess.beat("test-server")
    for person in people:
        person.connected("test-server")
    seen: list[set[frozenset[int]]] = []
    for number in range(3):
        activity = add_activity(live_session, "pair_round", f"Talk {number}", roles=["A", "B"])
        live_session.open_activity(activity)
        live_session.draw_pairs()
        groups: dict[int, set[int]] = {}
        for row in activity.pairs.all():
            groups.setdefault(row.group, set()).add(row.participant_id)
        pairs = {frozenset(group) for group in groups.values()}
        assert len(pairs) == 2 and all(len(pair) == 2 for pair in pairs)
        assert all(pairs.isdisjoint(earlier) for earlier in seen), "someone met again"
        seen.append(pairs)


async def test_drawing_pairs_with_fewer_than_two_connected_phones_is_refused(
    live_session, facilitator
):
    activity = await add_pair_round(live_session)
    await open_activity(live_session, activity)
    await database_sync_to_async(live_session.add_participant)()  # joined, not connected
    phone = await phone_joins(live_session)
    control, _ = await control_view(live_session, facilitator)

    await send(control, action="draw_pairs")
    await refusal(control, "At least two people must be connected to draw pairs.")
    assert await groups_in(activity) == []
    assert (await fresh_activity(activity)).current_round == 0
    assert await phone.socket.receive_nothing(timeout=0.2)
    await disconnect(phone, control)


async def test_only_connected_phones_are_paired(live_session, facilitator):
    activity = await add_pair_round(live_session)
    await open_activity(live_session, activity)
    staying = await phones_joined(live_session, 2)
    leaving = await phone_joins(live_session)
    control, _ = await control_view(live_session, facilitator)
    await disconnect(leaving)
    await receive_until(control, 'data-count="present">2<')

    await send(control, action="draw_pairs")
    first, second = staying
    assert set(group_shown(await receive_until(first.socket, "Round 1 of 2"))) == {
        "You",
        second.participant.pseudonym,
    }
    assert leaving.participant.pseudonym not in await receive_until(second.socket, "Round 1 of 2")
    (group,) = await groups_in(activity)
    assert sorted(group) == sorted(phone.participant.pk for phone in staying)

    # Back after the draw: placed with the pair, and both of them see the newcomer.
    back = await phone_reconnects(live_session, leaving)
    assert set(group_shown(back.stage)) == {
        "You",
        first.participant.pseudonym,
        second.participant.pseudonym,
    }
    for phone in staying:
        await receive_until(phone.socket, leaving.participant.pseudonym)
    await disconnect(*staying, back, control)


async def test_a_paired_phone_that_reconnects_keeps_its_partner(live_session, facilitator):
    activity = await add_pair_round(live_session)
    await open_activity(live_session, activity)
    phones = await phones_joined(live_session, 4)
    control, _ = await control_view(live_session, facilitator)
    await send(control, action="draw_pairs")
    before = group_shown(await receive_until(phones[0].socket, "Round 1 of 2"))
    groups = await groups_in(activity)

    await disconnect(phones[0])
    back = await phone_reconnects(live_session, phones[0])
    assert group_shown(back.stage) == before
    assert await groups_in(activity) == groups
    await disconnect(*phones[1:], back, control)


async def test_a_partner_whose_phone_drops_shows_as_gone_and_back_on_its_partners_phone(
    live_session, facilitator
):
    activity = await add_pair_round(live_session)
    phones, control = await pairs_drawn(live_session, facilitator, activity)
    groups = await groups_in(activity)
    by_pk = {phone.participant.pk: phone for phone in phones}
    (mine,) = [group for group in groups if phones[0].participant.pk in group]
    (partner,) = [by_pk[pk] for pk in mine if pk != phones[0].participant.pk]
    others = [phone for phone in phones if phone.participant.pk not in mine]

    await disconnect(phones[0])

    gone = await receive_until(partner.socket, "(not connected)")
    assert phones[0].participant.pseudonym in gone
    assert "raise your hand and the facilitator can pair you again" in gone
    for phone in others:  # the other pair's phones are left alone
        assert await phone.socket.receive_nothing(timeout=0.2)
    # The facilitator is told too, without a name.
    told = await receive_until(control, "1 group has a phone that is not connected now")
    assert phones[0].participant.pseudonym not in told
    back = await phone_reconnects(live_session, phones[0])
    again = await receive_until(partner.socket, phones[0].participant.pseudonym)
    assert "(not connected)" not in again
    assert "raise your hand" not in again
    assert "say your nickname out loud" in again
    for phone in others:
        assert await phone.socket.receive_nothing(timeout=0.2)
    everyone_back = await receive_until(control, 'data-count="present">4<')
    assert "not connected now" not in everyone_back
    await disconnect(*phones[1:], back, control)


# The countdown -----------------------------------------------------------------------------


async def test_opening_a_step_with_a_timer_starts_the_countdown_on_every_screen(
    live_session, facilitator
):
    step = await add(live_session, "instruction", "Write a letter", body="Write", timer_seconds=120)
    phone = await phone_joins(live_session)
    assert "data-countdown" not in phone.stage
    projector, _ = await projector_view(live_session, facilitator)
    control, _ = await control_view(live_session, facilitator)

    await send(control, action="open", activity=str(step.pk))
    for socket in (phone.socket, projector):
        assert 118 <= countdown(await receive_until(socket, "data-countdown")) <= 120
    controls = await receive_until(control, "data-countdown")
    assert 118 <= countdown(controls) <= 120
    assert "Pause timer" in controls
    await disconnect(phone, projector, control)


async def test_pausing_shows_the_paused_time_on_every_screen_and_no_running_countdown(
    live_session, facilitator
):
    step = await add(live_session, "instruction", "Write a letter", body="Write", timer_seconds=120)
    await open_activity(live_session, step)
    await set_timer_ends_in(live_session, 50.4)
    phone = await phone_joins(live_session)
    projector, _ = await projector_view(live_session, facilitator)
    control, before = await control_view(live_session, facilitator)
    assert "Pause timer" in before

    await send(control, action="pause_timer")
    frames = [await receive_until(socket, "timer-note") for socket in (phone.socket, projector)]
    session = await fresh_session(live_session)
    assert session.timer_ends_at is None
    paused = session.timer_paused_seconds
    assert 45 <= paused <= 51
    control_frame = await receive_until(control, "timer-note")
    for frame in [*frames, control_frame]:
        assert paused_timer(paused) in frame
        assert "data-countdown" not in frame
    assert "Resume timer" in control_frame and "Pause timer" not in control_frame
    await disconnect(phone, projector, control)


async def test_resuming_continues_from_the_paused_time_not_the_full_time(live_session, facilitator):
    step = await add(live_session, "instruction", "Write a letter", body="Write", timer_seconds=120)
    await open_activity(live_session, step)
    await set_timer_ends_in(live_session, 50.4)
    phone = await phone_joins(live_session)
    control, _ = await control_view(live_session, facilitator)
    await send(control, action="pause_timer")
    await receive_until(phone.socket, "timer-note")
    paused = (await fresh_session(live_session)).timer_paused_seconds
    await asyncio.sleep(1.1)  # time on a paused countdown does not count

    await send(control, action="resume_timer")
    resumed = countdown(await receive_until(phone.socket, "data-countdown"))
    assert paused - 1 <= resumed <= paused
    assert (await fresh_session(live_session)).timer_paused_seconds is None
    assert "Pause timer" in await receive_until(control, "data-countdown")
    await disconnect(phone, control)


async def test_plus_one_minute_adds_sixty_seconds_to_a_running_countdown(live_session, facilitator):
    step = await add(live_session, "instruction", "Write a letter", body="Write", timer_seconds=120)
    await open_activity(live_session, step)
    phone = await phone_joins(live_session)
    control, _ = await control_view(live_session, facilitator)

    await send(control, action="extend_timer")
    assert 178 <= countdown(await receive_until(phone.socket, "phone-stage")) <= 180
    await disconnect(phone, control)


async def test_plus_one_minute_on_a_paused_countdown_adds_sixty_seconds_and_stays_paused(
    live_session, facilitator
):
    step = await add(live_session, "instruction", "Write a letter", body="Write", timer_seconds=120)
    await open_activity(live_session, step)
    await set_timer_ends_in(live_session, 50.4)
    phone = await phone_joins(live_session)
    projector, _ = await projector_view(live_session, facilitator)
    control, _ = await control_view(live_session, facilitator)
    await send(control, action="pause_timer")
    await receive_until(phone.socket, "timer-note")
    await receive_until(projector, "timer-note")
    paused = (await fresh_session(live_session)).timer_paused_seconds

    await send(control, action="extend_timer")
    for socket in (phone.socket, projector):
        frame = await receive_until(socket, paused_timer(paused + 60))
        assert "data-countdown" not in frame
    assert (await fresh_session(live_session)).timer_paused_seconds == paused + 60
    await disconnect(phone, projector, control)


async def test_plus_one_minute_with_no_countdown_starts_a_one_minute_countdown(
    live_session, facilitator
):
    step = await add(live_session, "instruction", "Just talk", body="Talk freely")
    await open_activity(live_session, step)
    phone = await phone_joins(live_session)
    assert "data-countdown" not in phone.stage
    control, before = await control_view(live_session, facilitator)
    assert "+1 minute" in before and "Pause timer" not in before

    await send(control, action="extend_timer")
    assert 59 <= countdown(await receive_until(phone.socket, "phone-stage")) <= 60
    assert "Pause timer" in await receive_until(control, "data-countdown")
    await disconnect(phone, control)


async def test_plus_one_minute_on_a_question_counts_down_on_the_projector_and_answers_stay_open(
    live_session, facilitator
):
    question = await add(live_session, "scale", "How rested are you?", scale_min=1, scale_max=5)
    await open_activity(live_session, question)
    phone = await phone_joins(live_session)
    projector, _ = await projector_view(live_session, facilitator)
    control, before = await control_view(live_session, facilitator)
    assert "+1 minute" in before

    await send(control, action="extend_timer")

    frame = await receive_until(projector, "data-countdown")
    assert 59 <= countdown(frame) <= 60
    assert "on-question" in frame
    assert "Pause timer" in await receive_until(control, "data-countdown")
    # The phones stay on their question, with no clock to hurry anyone.
    assert "data-countdown" not in "".join(await frames_until_quiet(phone.socket))
    # Run out, the question still takes answers: the facilitator locks them.
    await set_timer_ends_in(live_session, -1)
    await send(phone.socket, action="answer", activity=question.pk, value="4")
    assert "Answer received" in await receive_until(phone.socket, "Answer received")
    # Locked, the projector says answers are closed, and the clock goes.
    await send(control, action="lock_answers")
    assert "data-countdown" not in await receive_until(projector, "answers closed")
    await disconnect(phone, projector, control)


async def test_the_next_step_without_a_timer_stops_the_countdown(live_session, facilitator):
    timed = await add(live_session, "instruction", "Write", body="Write", timer_seconds=120)
    await add(live_session, "instruction", "Talk", body="Talk freely")
    await open_activity(live_session, timed)
    phone = await phone_joins(live_session)
    assert "data-countdown" in phone.stage
    control, _ = await control_view(live_session, facilitator)

    await send(control, action="next", **{"from": str(timed.pk)})
    stage = await receive_until(phone.socket, "Talk freely")
    assert "data-countdown" not in stage and 'class="timer' not in stage
    session = await fresh_session(live_session)
    assert session.timer_ends_at is None and session.timer_paused_seconds is None
    await disconnect(phone, control)


async def test_a_phone_that_reconnects_is_shown_the_time_left_now(live_session, facilitator):
    step = await add(live_session, "instruction", "Write a letter", body="Write", timer_seconds=120)
    await open_activity(live_session, step)
    phone = await phone_joins(live_session)
    assert 118 <= countdown(phone.stage) <= 120
    await disconnect(phone)

    await set_timer_ends_in(live_session, 30)
    back = await phone_reconnects(live_session, phone)
    assert 29 <= countdown(back.stage) <= 30
    projector, first = await projector_view(live_session, facilitator)
    assert 29 <= countdown(first) <= 30
    await disconnect(back, projector)


async def test_a_phone_that_reconnects_during_a_pause_sees_it_paused(live_session, facilitator):
    step = await add(live_session, "instruction", "Write a letter", body="Write", timer_seconds=120)
    await open_activity(live_session, step)
    await set_timer_ends_in(live_session, 50.4)
    await database_sync_to_async(live_session.refresh_from_db)()
    await database_sync_to_async(live_session.pause_timer)()
    paused = live_session.timer_paused_seconds
    phone = await phone_joins(live_session)
    assert paused_timer(paused) in phone.stage and "data-countdown" not in phone.stage
    await disconnect(phone)


async def test_pause_and_resume_without_a_countdown_are_refused(live_session, facilitator):
    step = await add(live_session, "instruction", "Just talk", body="Talk freely")
    await open_activity(live_session, step)
    control, _ = await control_view(live_session, facilitator)

    await send(control, action="pause_timer")
    await refusal(control, "No countdown is running.")
    await send(control, action="resume_timer")
    await refusal(control, "The countdown is not paused.")
    session = await fresh_session(live_session)
    assert session.timer_ends_at is None and session.timer_paused_seconds is None
    await disconnect(control)


async def test_a_countdown_that_ran_out_is_not_paused_and_plus_one_minute_restarts_it(
    live_session, facilitator
):
    step = await add(live_session, "instruction", "Write a letter", body="Write", timer_seconds=120)
    await open_activity(live_session, step)
    await set_timer_ends_in(live_session, -1)
    control, _ = await control_view(live_session, facilitator)

    await send(control, action="pause_timer")
    await refusal(control, "The countdown has run out. Use +1 minute to give more time.")
    assert not (await fresh_session(live_session)).timer_paused
    await send(control, action="extend_timer")
    assert 59 <= countdown(await receive_until(control, "data-countdown")) <= 60
    await disconnect(control)


def test_the_countdown_pauses_resumes_and_extends_in_the_model(live_session):
    step = add_activity(live_session, "instruction", "Write", body="Write", timer_seconds=120)
    live_session.open_activity(step)
    assert 119 <= live_session.timer_remaining_seconds() <= 120
    live_session.timer_ends_at = timezone.now() + timedelta(seconds=40.4)
    live_session.pause_timer()
    assert live_session.timer_paused and live_session.timer_remaining_seconds() == 40
    live_session.extend_timer(60)
    assert live_session.timer_paused and live_session.timer_remaining_seconds() == 100
    live_session.resume_timer()
    assert not live_session.timer_paused
    assert 99 <= live_session.timer_remaining_seconds() <= 100
    with pytest.raises(ActionRefused, match="not paused"):
        live_session.resume_timer()


# Question cards ----------------------------------------------------------------------------


async def test_a_drawn_card_shows_on_the_projector_and_every_phone(live_session, facilitator):
    cards = await add(live_session, "question_cards", "Deeper questions", options=CARDS)
    await open_activity(live_session, cards)
    phones = await phones_joined(live_session, 2)
    assert all("The first card will appear here" in phone.stage for phone in phones)
    projector, _ = await projector_view(live_session, facilitator)
    control, _ = await control_view(live_session, facilitator)

    await send(control, action="draw_card")
    card = card_shown(await receive_until(projector, "Card 1 of 4"))
    assert card in CARDS
    for phone in phones:
        assert card_shown(await receive_until(phone.socket, "Card 1 of 4")) == card
    assert card_shown(await receive_until(control, "1 of 4 drawn")) == card
    await disconnect(*phones, projector, control)


async def test_drawing_every_card_shows_each_once_then_the_next_draw_is_refused(
    live_session, facilitator
):
    cards = await add(live_session, "question_cards", "Deeper questions", options=CARDS)
    await open_activity(live_session, cards)
    projector, _ = await projector_view(live_session, facilitator)
    control, _ = await control_view(live_session, facilitator)

    shown = []
    for number in range(1, len(CARDS) + 1):
        await send(control, action="draw_card")
        shown.append(card_shown(await receive_until(projector, f"Card {number} of 4")))
        await receive_until(control, f"{number} of 4 drawn")
    assert sorted(shown) == sorted(CARDS)

    await send(control, action="draw_card")
    await refusal(control, "Every card has been drawn.")
    assert len((await fresh_activity(cards)).cards_drawn) == len(CARDS)
    assert await projector.receive_nothing(timeout=0.2)
    await disconnect(projector, control)


# The breathing pacer -----------------------------------------------------------------------


async def test_opening_a_breathing_step_starts_the_pacer_in_step_on_every_screen(
    live_session, facilitator
):
    breathing = await add(
        live_session,
        "breathing",
        "Breathe",
        body="Follow the circle",
        inhale_seconds=5,
        exhale_seconds=7,
    )
    phone = await phone_joins(live_session)
    projector, _ = await projector_view(live_session, facilitator)
    control, _ = await control_view(live_session, facilitator)

    await send(control, action="open", activity=str(breathing.pk))
    for socket in (phone.socket, projector, control):
        inhale, exhale, elapsed = pacer(await receive_until(socket, "data-pacer"))
        assert (inhale, exhale) == (5, 7)
        assert 0 <= elapsed < 2
    await disconnect(phone)

    await asyncio.sleep(0.3)
    back = await phone_reconnects(live_session, phone)
    later = pacer(back.stage)[2]
    assert later >= 0.3
    # Long after: the phone picks up where everyone else is, not from the start.
    await database_sync_to_async(Session.objects.filter(pk=live_session.pk).update)(
        activity_opened_at=timezone.now() - timedelta(seconds=40)
    )
    await disconnect(back)
    again = await phone_reconnects(live_session, phone)
    assert 40 <= pacer(again.stage)[2] < 42
    _projector, first = await projector_view(live_session, facilitator)
    assert 40 <= pacer(first)[2] < 42
    await disconnect(again, projector, _projector, control)


# The safety flag ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        CRISIS_TEXT,
        "some days i WANT   to\nDIE",
        "I feel suicidal lately",
        "I have been cutting myself again",
        "I can't go on like this",
        "Honestly everyone would be better off without me.",
        "Self-harm is something I think about",
        # A Spanish-speaking phone, in a session in any language, with or without accents.
        "A veces pienso que no quiero seguir viviendo, quiero morirme",
        "He pensado en el SUICIDIO",
        "pienso en hacerme daño",
        "Me quiero matar",
        "me quiero suicidar",
        "tengo pensamientos suicidas",
        "a veces me autolesiono",
        "Mi pareja me golpea",
    ],
)
def test_a_crisis_phrase_is_flagged(text):
    assert needs_care(text)


def test_a_crisis_phrase_typed_with_a_phones_curly_apostrophe_is_flagged():
    # Phones type ’ (U+2019) for ' by default (iOS smart punctuation).
    assert needs_care("I can\u2019t go on like this")


@pytest.mark.parametrize(
    "text",
    [
        "I am on a diet",
        "I want to diet before summer",
        "I died laughing at the film",
        "Glad to be here, it was a good week.",
        "My cat is suicidally brave around dogs",
        "",
        # Near misses in Spanish: everyday sayings close to a listed phrase.
        "Me corto el pelo mañana",
        "No aguanto más el calor",
        "Ya no puedo más de sueño, jaja",
        "Me mata de risa",
        "La vida me golpea a veces",
        "Hoy vivo más tranquila",
    ],
)
def test_ordinary_words_are_not_flagged(text):
    assert not needs_care(text)


def test_a_flagged_answer_is_kept_out_of_the_shown_result(live_session, participant):
    words = add_activity(live_session, "word_cloud", "Three words")
    live_session.open_activity(words)
    answer = participant.answer(words.pk, {"word": ["Suicidal", "tired"]})
    assert answer.flagged
    other, _ = live_session.add_participant()
    assert not other.answer(words.pk, {"word": ["hopeful"]}).flagged
    result = summarize(words, 2)
    assert result.flagged == ["suicidal tired"]
    assert [word.text for word in result.words] == ["hopeful"]
    # Changed to something harmless, the answer is no longer flagged.
    assert not participant.answer(words.pk, {"word": ["calm"]}).flagged


async def test_a_crisis_answer_alerts_the_facilitator_and_never_reaches_the_projector(
    live_session, facilitator
):
    support = await add(live_session, "resources", "When to seek more support", body="Help")
    text_step = await add(live_session, "open_text", "What weighs on you?")
    live_session.auto_approve = True
    await database_sync_to_async(live_session.save)()
    await open_activity(live_session, text_step)
    projected: list[str] = []
    projector, first = await projector_view(live_session, facilitator)
    projected.append(first)
    control, _ = await control_view(live_session, facilitator)
    phones = await phones_joined(live_session, 6)

    await send(phones[0].socket, action="answer", activity=text_step.pk, text=CRISIS_TEXT)
    assert "Answer received" in await receive_until(phones[0].socket, "phone-stage")
    (stored,) = await database_sync_to_async(list)(Answer.objects.filter(activity=text_step))
    assert stored.flagged and stored.value == CRISIS_TEXT
    alert = await receive_until(control, "Someone may need care")
    assert CRISIS_TEXT in alert
    assert f"Open the support step: {support.prompt}" in alert
    assert f'"activity": "{support.pk}"' in alert

    ordinary = ["Work is a lot", "Missing my sister", "Sleep, mostly", "Rain", "My dog"]
    for phone, text in zip(phones[1:], ordinary, strict=True):
        await send(phone.socket, action="answer", activity=text_step.pk, text=text)
        await receive_until(phone.socket, "Answer received")
    # The room sees five answers: the flagged one is neither shown nor counted there.
    shown = await recorded_until(projector, "5 answers", projected)
    assert all(text in shown for text in ordinary), "the results are shown on the projector"
    alert = await receive_until(control, 'data-count="answered">6<')
    assert "Someone may need care" in alert and CRISIS_TEXT in alert
    # A control view opened later (a reload) still shows the alert.
    reloaded, first_control = await control_view(live_session, facilitator)
    assert "Someone may need care" in first_control and CRISIS_TEXT in first_control
    await disconnect(reloaded)
    projected += await frames_until_quiet(projector)
    _again, reopened = await projector_view(live_session, facilitator)
    projected.append(reopened)
    for frame in projected:
        assert "want to die" not in frame.casefold()
        assert "Someone may need care" not in frame

    # The alert's button opens the support step for everyone.
    await send(control, action="open", activity=str(support.pk))
    assert "This is not medical advice" in await receive_until(phones[0].socket, "phone-stage")
    await disconnect(*phones, projector, _again, control)


async def test_without_a_support_step_the_alert_offers_to_add_one(live_session, facilitator):
    text_step = await add(live_session, "open_text", "What weighs on you?")
    await open_activity(live_session, text_step)
    control, _ = await control_view(live_session, facilitator)
    phone = await phone_joins(live_session)
    await send(phone.socket, action="answer", activity=text_step.pk, text="I feel suicidal")
    alert = await receive_until(control, "Someone may need care")
    assert "Add a support and resources step to the agenda" in alert
    assert "Open the support step" not in alert
    await disconnect(phone, control)


@pytest.mark.parametrize("text", ["I am on a diet", "Glad to be here, it was a good week."])
async def test_an_ordinary_answer_raises_no_alert(live_session, facilitator, text):
    text_step = await add(live_session, "open_text", "What weighs on you?")
    await open_activity(live_session, text_step)
    control, _ = await control_view(live_session, facilitator)
    phone = await phone_joins(live_session)
    await send(phone.socket, action="answer", activity=text_step.pk, text=text)
    update = await receive_until(control, 'data-count="answered">1<')
    assert "Someone may need care" not in update
    (stored,) = await database_sync_to_async(list)(Answer.objects.filter(activity=text_step))
    assert not stored.flagged
    await disconnect(phone, control)


# Who may do what ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "kind"),
    [
        ("draw_pairs", "pair_round"),
        ("next_round", "pair_round"),
        ("draw_card", "question_cards"),
        ("pause_timer", "pair_round"),
        ("resume_timer", "pair_round"),
        ("extend_timer", "pair_round"),
    ],
)
async def test_a_phone_cannot_lead_a_step(live_session, action, kind):
    fields = {"options": CARDS} if kind == "question_cards" else {"roles": ["A", "B"]}
    step = await add(live_session, kind, "Lead me", timer_seconds=120, rounds=2, **fields)
    await open_activity(live_session, step)
    phones = await phones_joined(live_session, 2)
    if kind == "pair_round":
        await database_sync_to_async(step.draw_pairs)()

    def state():
        session = Session.objects.get(pk=live_session.pk)
        activity = Activity.objects.get(pk=step.pk)
        return (
            session.timer_ends_at,
            session.timer_paused_seconds,
            activity.current_round,
            activity.cards_drawn,
            list(activity.pairs.values_list("participant_id", "group")),
        )

    before = await database_sync_to_async(state)()
    await send(phones[0].socket, action=action)
    assert "That action is not available here." in await phones[0].socket.receive_from()
    assert await database_sync_to_async(state)() == before
    assert await phones[1].socket.receive_nothing(timeout=0.2)
    await disconnect(*phones)


@pytest.mark.parametrize(
    ("open_kind", "action", "message"),
    [
        (None, "draw_pairs", "Open a pair round step first."),
        (None, "draw_card", "Open a question cards step first."),
        ("open_text", "draw_pairs", "Open a pair round step first."),
        ("open_text", "next_round", "Open a pair round step first."),
        ("open_text", "draw_card", "Open a question cards step first."),
        ("question_cards", "draw_pairs", "Open a pair round step first."),
        ("pair_round", "draw_card", "Open a question cards step first."),
        ("pair_round", "next_round", "Draw pairs first."),
        ("open_text", "pause_timer", "No countdown is running."),
    ],
)
async def test_a_step_action_on_the_wrong_step_is_refused_with_a_clear_message(
    live_session, facilitator, open_kind, action, message
):
    if open_kind:
        fields = {"options": CARDS} if open_kind == "question_cards" else {}
        step = await add(live_session, open_kind, "Something else", **fields)
        await open_activity(live_session, step)
    phones = await phones_joined(live_session, 2)
    control, _ = await control_view(live_session, facilitator)

    await send(control, action=action)
    await refusal(control, message)
    assert not await database_sync_to_async(PairAssignment.objects.exists)()
    cards_drawn = await database_sync_to_async(
        lambda: [a.cards_drawn for a in Activity.objects.filter(session=live_session)]
    )()
    assert all(drawn == [] for drawn in cards_drawn)
    for phone in phones:
        assert await phone.socket.receive_nothing(timeout=0.1)
    await disconnect(*phones, control)


# What only the facilitator sees ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("instruction", {"body": "Everyone reads this", "timer_seconds": 60}),
        ("pair_round", {"body": "Everyone reads this", "roles": ["Speaker", "Listener"]}),
        ("breathing", {"body": "Everyone reads this"}),
        ("question_cards", {"body": "Everyone reads this", "options": CARDS}),
        ("open_text", {"body": "Everyone reads this"}),
    ],
)
async def test_the_script_is_shown_to_the_facilitator_only(live_session, facilitator, kind, fields):
    step = await add(live_session, kind, "A step with a script", script=SCRIPT, **fields)
    phones = await phones_joined(live_session, 2)
    projector, first_projected = await projector_view(live_session, facilitator)
    control, _ = await control_view(live_session, facilitator)

    await send(control, action="open", activity=str(step.pk))
    assert SCRIPT in await receive_until(control, "Your script")
    public = [first_projected, *[phone.stage for phone in phones]]
    await recorded_until(projector, "Everyone reads this", public)
    for phone in phones:
        await recorded_until(phone.socket, "Everyone reads this", public)
    if kind == "pair_round":
        await send(control, action="draw_pairs")
        for phone in phones:
            await recorded_until(phone.socket, "Round 1 of", public)
    if kind == "question_cards":
        await send(control, action="draw_card")
        for phone in phones:
            await recorded_until(phone.socket, "Card 1 of", public)
    public += await frames_until_quiet(projector, quiet=0.3)
    for phone in phones:
        public += await frames_until_quiet(phone.socket, quiet=0.1)
    # Screens that connect now render the open step from scratch.
    late = await phone_joins(live_session)
    _projector, reopened = await projector_view(live_session, facilitator)
    public += [late.stage, reopened]

    assert all("Everyone reads this" in frame for frame in (late.stage, reopened))
    for frame in public:
        assert "Read the room slowly" not in frame
        assert "Your script" not in frame
    await disconnect(*phones, late, projector, _projector, control)


async def test_a_double_press_on_draw_a_card_draws_one_card(live_session, facilitator):
    cards = await database_sync_to_async(add_activity)(
        live_session, "question_cards", "Cards", options=["One?", "Two?", "Three?", "Four?"]
    )
    await open_activity(live_session, cards)
    control, _ = await control_view(live_session, facilitator)
    # Both presses were drawn when no card had been drawn yet.
    await send(control, action="draw_card", seen="0")
    await send(control, action="draw_card", seen="0")
    await receive_until(control, "A card was drawn just now")
    await database_sync_to_async(cards.refresh_from_db)()
    assert len(cards.cards_drawn) == 1
    await control.disconnect()


def test_a_card_deck_cannot_change_once_cards_are_drawn(live_session):
    from sessions.forms import ActivityForm

    cards = add_activity(live_session, "question_cards", "Cards", options=["A?", "B?", "C?", "D?"])
    live_session.open_activity(cards)
    live_session.draw_card()
    cards.refresh_from_db()

    form = ActivityForm({"prompt": "Cards", "options": "A?\nB?\nC?"}, instance=cards)

    assert form.fields["options"].disabled
    assert form.is_valid()
    form.save()
    cards.refresh_from_db()
    assert cards.options == ["A?", "B?", "C?", "D?"]
    assert cards.current_card in cards.options
