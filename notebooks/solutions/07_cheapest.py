# Exercise 07.1: the process method with the fewest seconds at the largest payload.
process_rows = [r for r in transfer_rows if "seconds" in r and r["method"] != "thread (no copy)"]
top = max(r["bytes"] for r in process_rows)
answer_method = min((r for r in process_rows if r["bytes"] == top),
                    key=lambda r: r["seconds"])["method"]
