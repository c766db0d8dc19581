# Exercise 01.2: the largest lag of the inline run, converted to milliseconds.
answer_lag_ms = max(lag for _, lag in inline_run.lag) * 1000
