from django.contrib import admin

from .models import Activity, Session


class ActivityInline(admin.TabularInline):
    model = Activity
    extra = 0


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    # Participants and answers are left out on purpose: nobody browses them one by one.
    list_display = ["title", "facilitator", "status", "join_code", "created_at"]
    list_filter = ["status"]
    inlines = [ActivityInline]
