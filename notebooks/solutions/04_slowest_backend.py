# Exercise 04.2: the backend with the lowest speedup on the pure-Python workload.
python_rows = [r for r in backend_rows if r["workload"] == "python"]
answer_backend = min(python_rows, key=lambda r: r["speedup"])["backend"]
