# Exercise 06.1: one worker per usable CPU for a CPU-bound route.
from helpers.core import machine

answer_workers = machine.usable_cpus()
