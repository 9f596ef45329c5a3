"""Delete the raw answers of sessions whose retention time is over. Every server process does
this once an hour already (sessions/retention.py); this is for cron, or for a database no
server runs on. Safe beside them: a session already done, or being done by another at the same
moment, is skipped."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from sessions import retention


class Command(BaseCommand):
    help = "Delete raw answers N days after each session ended, keeping thresholded counts."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="List the sessions that are due; change nothing."
        )

    def handle(self, *args: Any, dry_run: bool = False, **options: Any) -> None:
        now = timezone.now()
        sessions = retention.due(now) if dry_run else retention.apply(now)
        for session in sessions:
            verb = "Due" if dry_run else "Deleted raw answers of"
            self.stdout.write(f"{verb} session {session.pk} (ended {session.ended_at:%Y-%m-%d})")
        self.stdout.write(f"{len(sessions)} session(s) {'due' if dry_run else 'done'}.")
