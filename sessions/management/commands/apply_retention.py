"""Delete the raw answers of sessions whose retention time is over. Safe to run from cron:
a session already done, or being done by another run at the same moment, is skipped."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from sessions.models import Session


class Command(BaseCommand):
    help = "Delete raw answers N days after each session ended, keeping thresholded counts."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="List the sessions that are due; change nothing."
        )

    def handle(self, *args: Any, dry_run: bool = False, **options: Any) -> None:
        now = timezone.now()
        candidates = Session.objects.filter(
            status=Session.Status.ENDED, answers_deleted_at__isnull=True
        ).order_by("ended_at")
        due = [session for session in candidates if session.retention_due(now)]
        for session in due:
            if not dry_run:
                session.delete_raw_answers(now)
            verb = "Due" if dry_run else "Deleted raw answers of"
            self.stdout.write(f"{verb} session {session.pk} (ended {session.ended_at:%Y-%m-%d})")
        self.stdout.write(f"{len(due)} session(s) {'due' if dry_run else 'done'}.")
