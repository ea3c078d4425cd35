"""URL routing conventions: optional trailing slash, and resources nested under a project."""

from rest_framework.routers import SimpleRouter

PROJECT_PREFIX = r"projects/(?P<project_id>[^/]+)"


class ApiRouter(SimpleRouter):
    """A router whose routes accept the path with or without a trailing slash, as PostHog's do."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"

    def register_project_resource(self, resource: str, viewset, basename: str) -> None:
        """Register `viewset` at `/api/projects/{project_id}/<resource>/`."""
        self.register(f"{PROJECT_PREFIX}/{resource}", viewset, basename=basename)
