"""Notebook 05 builds a process pool in four steps, one module each.

Each step adds one idea to the one before; notebook 05 shows each module's source
next to a small experiment. The code lives here, not in the notebook, because
worker processes must import it (under spawn and forkserver they cannot see
functions defined in a notebook). Standard library only, like ``helpers.pool``.

==========================  ==================================================
``step1_queue``             a task queue, N worker processes, a result queue
``step2_futures``           ``submit`` returns a Future; a thread resolves them
``step3_errors``            exceptions travel back, with the worker's traceback
``step4_crashes``           one pipe per worker: a crash fails only its task
==========================  ==================================================

The finished product, with batching, backpressure, timeouts and shutdown, is
:class:`helpers.pool.WorkerPool`.
"""
