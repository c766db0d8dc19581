# Exercise 05.2: above the longest healthy task (0.2 s), at most the 1 s allowed.
answer_timeout = 0.5
