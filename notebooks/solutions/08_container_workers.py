# Exercise 08.1: one worker per CPU the process may use, as the smaller machine reported.
answer_workers = smaller["usable"]
