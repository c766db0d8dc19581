# Exercise 08.2: the budget divided by the growth per task, rounded down.
import math

answer_recycle = math.floor(50 / leak_per_task)
