"""Downloads of a session's exports, for its own facilitator only (see sessions/exports.py)."""

from __future__ import annotations

from functools import partial

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.utils.http import content_disposition_header
from django.views.decorators.cache import never_cache

from . import exports
from .models import Session
from .views import _get_own_session

# Each export: what builds it, its content type, and the end of its file name.
EXPORTS = {
    "aggregates_csv": (exports.aggregates_csv, "text/csv", "results.csv"),
    "answers_csv": (exports.answers_csv, "text/csv", "answers.csv"),
    "json": (exports.session_json, "application/json", "session.json"),
    "pdf": (exports.summary_pdf, "application/pdf", "summary.pdf"),
    "pdf_private": (
        partial(exports.summary_pdf, private=True),
        "application/pdf",
        "summary-private.pdf",
    ),
}


@login_required
@never_cache
def export(request: HttpRequest, session_id: int, kind: str) -> HttpResponse:
    session = _get_own_session(request, session_id)
    build, content_type, what = EXPORTS[kind]
    return _download(session, what, build(session), content_type)


def _download(session: Session, what: str, content: str | bytes, content_type: str) -> HttpResponse:
    if isinstance(content, str):
        content_type += "; charset=utf-8"
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=exports.filename(session, what)
    )
    return response
