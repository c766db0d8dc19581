"""Tools: the preflight check (``make check``), the handouts (``make handouts``), and
set-up without make (``python -m helpers.tools.setup_course``, for Windows)."""
