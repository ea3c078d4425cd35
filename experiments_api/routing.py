"""URL routing conventions: optional trailing slash, and resources nested under a project, which
also answer under PostHog's newer environments prefix."""

from django.urls import URLPattern, re_path
from rest_framework.routers import SimpleRouter

PROJECT_PREFIX = r"projects/(?P<project_id>[^/]+)"
# PostHog's newer name for a project's routes, used by its agent toolkit and MCP server. This
# server has one environment per project, so the environment id is the project id.
ENVIRONMENT_PREFIX = r"environments/(?P<project_id>[^/]+)"
ENVIRONMENT_URL_NAME_PREFIX = "environment-"


class ApiRouter(SimpleRouter):
    """A router whose routes accept the path with or without a trailing slash, as PostHog's do."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"

    def register_project_resource(self, resource: str, viewset, basename: str) -> None:
        """Register `viewset` at `/api/projects/{project_id}/<resource>/` (and, like every
        project route, at `/api/environments/{project_id}/<resource>/`)."""
        self.register(f"{PROJECT_PREFIX}/{resource}", viewset, basename=basename)

    def get_urls(self) -> list[URLPattern]:
        urls = super().get_urls()
        return urls + [environment_alias(url) for url in urls if is_project_route(url)]


def is_project_route(url: URLPattern) -> bool:
    return url.pattern.regex.pattern.startswith(f"^{PROJECT_PREFIX}/")


def environment_alias(url: URLPattern) -> URLPattern:
    """The same view at `environments/{project_id}/…` under its own name, so reversing a
    project route still gives the project path."""
    pattern = url.pattern.regex.pattern.replace(PROJECT_PREFIX, ENVIRONMENT_PREFIX, 1)
    return re_path(pattern, url.callback, name=f"{ENVIRONMENT_URL_NAME_PREFIX}{url.name}")


def is_environment_alias(path: str) -> bool:
    return path.startswith("/api/environments/")
