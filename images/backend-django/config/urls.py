from django.urls import path

from activities import views

urlpatterns = [
    path("api/health", views.health),
    path("api/activities/home", views.home_activities),
    path("api/fail", views.fail),
]
