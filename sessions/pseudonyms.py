"""Random, friendly pseudonyms such as "Calm Otter": nothing about the person, nothing to guess."""

import secrets
from collections.abc import Callable

ADJECTIVES = [
    "Calm",
    "Gentle",
    "Brave",
    "Quiet",
    "Kind",
    "Bright",
    "Steady",
    "Warm",
    "Curious",
    "Patient",
    "Hopeful",
    "Open",
    "Honest",
    "Playful",
    "Thoughtful",
    "Easy",
    "Clear",
    "Soft",
    "Bold",
    "Merry",
    "Sunny",
    "Wise",
    "Friendly",
    "Careful",
    "Lively",
    "Humble",
    "Cheerful",
    "Serene",
    "Tender",
    "Sincere",
    "Nimble",
    "Golden",
    "Mellow",
    "Jolly",
    "Loyal",
    "Spry",
    "Cosy",
    "Fair",
    "Keen",
    "Noble",
]

ANIMALS = [
    "Otter",
    "Heron",
    "Fox",
    "Badger",
    "Wren",
    "Hare",
    "Seal",
    "Owl",
    "Deer",
    "Robin",
    "Lynx",
    "Panda",
    "Koala",
    "Finch",
    "Dolphin",
    "Beaver",
    "Sparrow",
    "Turtle",
    "Falcon",
    "Swan",
    "Marten",
    "Puffin",
    "Crane",
    "Bison",
    "Moose",
    "Lark",
    "Hedgehog",
    "Salmon",
    "Gecko",
    "Ibis",
    "Wombat",
    "Alpaca",
    "Starling",
    "Kestrel",
    "Octopus",
    "Manatee",
    "Squirrel",
    "Raven",
    "Plover",
    "Orca",
]


def random_pseudonym(taken_of: Callable[[list[str]], set[str]]) -> str:
    """A pseudonym that is not taken yet; a number is added once the plain names run short.

    `taken_of(names)` says which of a batch of candidates are taken: a crowded session costs a
    lookup or two, never a list of every name in it.
    """
    number = 1
    while True:
        suffix = "" if number == 1 else f" {number}"
        names = [
            f"{secrets.choice(ADJECTIVES)} {secrets.choice(ANIMALS)}{suffix}" for _ in range(10)
        ]
        taken = taken_of(names)
        for name in names:
            if name not in taken:
                return name
        number += 1
