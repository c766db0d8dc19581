# Exercise 02.2: lost = expected - counted.
answer_lost = racy.expected - racy.counted
