# Exercise 06.3: the failures counted during the rolling restart.
answer_failures = restart.result.failures
