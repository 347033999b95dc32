"""A real uvicorn server on loopback, in a thread, for API tests."""

from hotlist.serve.app import running_in_thread as running_api

__all__ = ["running_api"]
