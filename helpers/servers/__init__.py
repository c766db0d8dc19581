"""Servers the course starts and always stops: the pre-fork server and its supervisor,
the asyncio server, the demo WSGI apps, gunicorn, a load generator, the SIGTERM job
runner and a Dask cluster session. Standard library only at import time.
"""
