"""Workshop tools: the preflight check (``make check``) and the handouts (``make handouts``)."""
