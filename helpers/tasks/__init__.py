"""Every function a worker process runs, beyond ``core.workloads``.

Standard library only and cheap to import (a module that needs NumPy imports it inside
the function that uses it): under spawn and forkserver each worker imports these
modules afresh, and another interpreter with nothing installed can run them too.
"""
