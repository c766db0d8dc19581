# Exercise 05.2: above the longest healthy task (0.2 s), below the 1 s allowed (the pool
# kills a stuck task a moment after task_timeout has passed, not at once).
answer_timeout = 0.5
