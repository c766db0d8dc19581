# Exercise 03.1: the row with the largest median time to first result.
answer_method = max(start_rows, key=lambda r: r["first_result_ms"])["method"]
