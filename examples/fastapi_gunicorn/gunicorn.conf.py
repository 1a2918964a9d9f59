"""gunicorn settings for app.py: uvicorn workers, and multiprocess metrics cleaned up per dead worker."""

from prometheus_client import multiprocess

worker_class = "uvicorn_worker.UvicornWorker"


def child_exit(server, worker):  # gunicorn calls it with both
    multiprocess.mark_process_dead(worker.pid)
