"""What the learner sees: figures, dashboards, tables and exercise checkers.

Plots draw records they are given; widgets only re-run an experiment and redraw.
"""
