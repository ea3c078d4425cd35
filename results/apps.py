from django.apps import AppConfig
from django.conf import settings


class ResultsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "results"
    verbose_name = "Experiment results"

    def ready(self) -> None:
        # Without a task queue (SQLite) recalculation requests are recorded and wait, and async
        # query runs are computed in the request that asks for them.
        if getattr(settings, "TASK_QUEUE_ENABLED", False):
            from experiments.recalculations import register_recalculation_queue
            from results.queries import register_query_run_queue
            from results.tasks import ProcrastinateQueryRunQueue, ProcrastinateRecalculationQueue

            register_recalculation_queue(ProcrastinateRecalculationQueue())
            register_query_run_queue(ProcrastinateQueryRunQueue())
