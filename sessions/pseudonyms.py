"""Random, friendly pseudonyms such as "Calm Otter" ("Nutria Tranquila" in a Spanish session):
nothing about the person, nothing to guess."""

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


# Spanish: the animal first, with its grammatical gender, then the adjective that agrees with
# it ("Nutria Tranquila", "Zorro Tranquilo"). Each adjective: (masculine, feminine).
ANIMALES = [
    ("Nutria", "f"),
    ("Garza", "f"),
    ("Zorro", "m"),
    ("Tejón", "m"),
    ("Golondrina", "f"),
    ("Liebre", "f"),
    ("Foca", "f"),
    ("Búho", "m"),
    ("Ciervo", "m"),
    ("Petirrojo", "m"),
    ("Lince", "m"),
    ("Panda", "m"),
    ("Koala", "m"),
    ("Jilguero", "m"),
    ("Delfín", "m"),
    ("Castor", "m"),
    ("Gorrión", "m"),
    ("Tortuga", "f"),
    ("Halcón", "m"),
    ("Cisne", "m"),
    ("Ardilla", "f"),
    ("Grulla", "f"),
    ("Bisonte", "m"),
    ("Alce", "m"),
    ("Alondra", "f"),
    ("Erizo", "m"),
    ("Salmón", "m"),
    ("Salamandra", "f"),
    ("Ballena", "f"),
    ("Alpaca", "f"),
    ("Estornino", "m"),
    ("Cernícalo", "m"),
    ("Pulpo", "m"),
    ("Manatí", "m"),
    ("Gaviota", "f"),
    ("Cuervo", "m"),
    ("Orca", "f"),
    ("Mariposa", "f"),
    ("Cebra", "f"),
    ("Llama", "f"),
]

ADJETIVOS = [
    ("Tranquilo", "Tranquila"),
    ("Sereno", "Serena"),
    ("Valiente", "Valiente"),
    ("Amable", "Amable"),
    ("Sincero", "Sincera"),
    ("Alegre", "Alegre"),
    ("Curioso", "Curiosa"),
    ("Paciente", "Paciente"),
    ("Abierto", "Abierta"),
    ("Honesto", "Honesta"),
    ("Juguetón", "Juguetona"),
    ("Atento", "Atenta"),
    ("Suave", "Suave"),
    ("Audaz", "Audaz"),
    ("Risueño", "Risueña"),
    ("Luminoso", "Luminosa"),
    ("Sabio", "Sabia"),
    ("Amigable", "Amigable"),
    ("Cuidadoso", "Cuidadosa"),
    ("Animado", "Animada"),
    ("Humilde", "Humilde"),
    ("Cariñoso", "Cariñosa"),
    ("Tierno", "Tierna"),
    ("Ágil", "Ágil"),
    ("Dorado", "Dorada"),
    ("Leal", "Leal"),
    ("Noble", "Noble"),
    ("Sensato", "Sensata"),
    ("Tenaz", "Tenaz"),
    ("Cálido", "Cálida"),
    ("Discreto", "Discreta"),
    ("Generoso", "Generosa"),
    ("Despierto", "Despierta"),
    ("Sonriente", "Sonriente"),
    ("Feliz", "Feliz"),
    ("Firme", "Firme"),
    ("Pacífico", "Pacífica"),
    ("Templado", "Templada"),
    ("Sosegado", "Sosegada"),
    ("Confiado", "Confiada"),
]


def _candidate(language: str) -> str:
    if language == "es":
        animal, gender = secrets.choice(ANIMALES)
        masculine, feminine = secrets.choice(ADJETIVOS)
        return f"{animal} {feminine if gender == 'f' else masculine}"
    return f"{secrets.choice(ADJECTIVES)} {secrets.choice(ANIMALS)}"


def random_pseudonym(taken_of: Callable[[list[str]], set[str]], language: str = "en") -> str:
    """A pseudonym in the session's `language` (English unless it is "es") that is not taken
    yet; a number is added once the plain names run short.

    `taken_of(names)` says which of a batch of candidates are taken: a crowded session costs a
    lookup or two, never a list of every name in it.
    """
    number = 1
    while True:
        suffix = "" if number == 1 else f" {number}"
        names = [f"{_candidate(language)}{suffix}" for _ in range(10)]
        taken = taken_of(names)
        for name in names:
            if name not in taken:
                return name
        number += 1
