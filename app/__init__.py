"""The FastAPI service, command line, storage backends, auth, jobs and maps."""

__version__ = "0.1.0"
