"""Validate the exercise library's data files and load them (see docs/exercise-library.md)."""

from django.core.management.base import BaseCommand, CommandError

from sessions.exercises.loader import load_library, read_library
from sessions.exercises.schema import LibraryError


class Command(BaseCommand):
    help = "Validate the exercise library and session plans, and load them. Safe to run again."

    def add_arguments(self, parser):
        parser.add_argument(
            "--check", action="store_true", help="Only validate the files; write nothing."
        )

    def handle(self, *args, check: bool, **options):
        try:
            if check:
                exercises, plans = read_library()
                self.stdout.write(f"{len(exercises)} exercises and {len(plans)} plans are valid.")
                return
            self.stdout.write(str(load_library()))
        except LibraryError as error:
            raise CommandError(f"The exercise library has problems:\n{error}") from error
