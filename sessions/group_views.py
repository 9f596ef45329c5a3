"""Recurring groups: a facilitator's weekly circles, their sessions and their trend."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext

from . import live
from .forms import GroupForm
from .models import Group, Session
from .trends import group_trend


def _get_own_group(request: HttpRequest, group_id: int) -> Group:
    # Another facilitator's group is a 404, not a 403: its existence is not theirs to know.
    return get_object_or_404(Group, pk=group_id, facilitator=request.user)


@login_required
def group_list(request: HttpRequest) -> HttpResponse:
    groups = Group.objects.filter(facilitator=request.user).annotate(
        session_count=Count("sessions")
    )
    return render(request, "sessions/group_list.html", {"groups": groups})


@login_required
def group_create(request: HttpRequest) -> HttpResponse:
    form = GroupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        group = form.save(commit=False)
        group.facilitator = request.user
        group.save()
        return redirect("group_detail", group_id=group.pk)
    return _render_form(request, form, None)


@login_required
def group_edit(request: HttpRequest, group_id: int) -> HttpResponse:
    group = _get_own_group(request, group_id)
    form = GroupForm(request.POST or None, instance=group)
    if request.method == "POST" and form.is_valid():
        form.save()
        return redirect("group_detail", group_id=group.pk)
    return _render_form(request, form, group)


def _render_form(request: HttpRequest, form: GroupForm, group: Group | None) -> HttpResponse:
    return render(
        request,
        "sessions/group_form.html",
        {"form": form, "group": group},
        status=400 if form.errors else 200,
    )


@login_required
def group_detail(request: HttpRequest, group_id: int) -> HttpResponse:
    group = _get_own_group(request, group_id)
    return render(
        request,
        "sessions/group_detail.html",
        {
            "group": group,
            "trend": group_trend(group),
            "drafts": group.sessions.filter(status=Session.Status.DRAFT),
        },
    )


@login_required
def group_delete(request: HttpRequest, group_id: int) -> HttpResponse:
    group = _get_own_group(request, group_id)
    sessions = group.sessions.all()
    if request.method != "POST":
        return render(
            request,
            "sessions/group_confirm_delete.html",
            {"group": group, "session_count": sessions.count()},
        )
    with_sessions = bool(request.POST.get("delete_sessions"))
    with transaction.atomic():
        if with_sessions:
            live_ids = list(
                sessions.filter(status=Session.Status.LIVE).values_list("pk", flat=True)
            )
            sessions.delete()
            for session_id in live_ids:
                live.after_commit(live.close_session, session_id)
        group.delete()  # its members go with it; sessions kept are detached (SET_NULL)
    if with_sessions:
        message = gettext("“%(name)s” and its sessions are deleted.")
    else:
        message = gettext("“%(name)s” is deleted. Its sessions are kept.")
    messages.success(request, message % {"name": group.name})
    return redirect("group_list")
