"""Random, friendly pseudonyms such as "Calm Otter": nothing about the person, nothing to guess."""

import secrets

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


def random_pseudonym(taken: set[str]) -> str:
    """A pseudonym not in `taken`; a number is added once the plain names run short."""
    for _ in range(50):
        name = f"{secrets.choice(ADJECTIVES)} {secrets.choice(ANIMALS)}"
        if name not in taken:
            return name
    number = 2
    while True:
        name = f"{secrets.choice(ADJECTIVES)} {secrets.choice(ANIMALS)} {number}"
        if name not in taken:
            return name
        number += 1
