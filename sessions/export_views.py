"""Downloads of a session's exports, for its own facilitator only (see sessions/exports.py)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.utils.http import content_disposition_header
from django.views.decorators.cache import never_cache

from . import exports
from .models import Session
from .views import _get_own_session


@login_required
@never_cache
def export_aggregates_csv(request: HttpRequest, session_id: int) -> HttpResponse:
    session = _get_own_session(request, session_id)
    return _download(session, "results.csv", exports.aggregates_csv(session), "text/csv")


@login_required
@never_cache
def export_answers_csv(request: HttpRequest, session_id: int) -> HttpResponse:
    session = _get_own_session(request, session_id)
    return _download(session, "answers.csv", exports.answers_csv(session), "text/csv")


@login_required
@never_cache
def export_json(request: HttpRequest, session_id: int) -> HttpResponse:
    session = _get_own_session(request, session_id)
    return _download(session, "session.json", exports.session_json(session), "application/json")


@login_required
@never_cache
def export_pdf(request: HttpRequest, session_id: int) -> HttpResponse:
    session = _get_own_session(request, session_id)
    return _download(session, "summary.pdf", exports.summary_pdf(session), "application/pdf")


def _download(session: Session, what: str, content: str | bytes, content_type: str) -> HttpResponse:
    if isinstance(content, str):
        content_type += "; charset=utf-8"
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=exports.filename(session, what)
    )
    return response
