# Exercise 03.2: among the shortest tasks, the chunk size with the best speedup.
shortest = min(r["task_ms"] for r in break_rows)
answer_chunksize = max((r for r in break_rows if r["task_ms"] == shortest),
                       key=lambda r: r["speedup"])["chunksize"]
