from django.contrib import admin
from django.urls import include, path

from sessions.forms import ThrottledAdminAuthenticationForm
from sessions.views import SignInView

admin.site.login_form = ThrottledAdminAuthenticationForm

urlpatterns = [
    # Before Django's own sign-in page, which it replaces: this one slows down password guessing.
    path("accounts/login/", SignInView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("", include("sessions.urls")),
]
