# Exercise 00.2: efficiency = speedup / workers, at the largest worker count
# that does not exceed the usable CPUs.
top = max(p for p in result.workers if p <= result.usable_cpus)
answer_efficiency = result.speedups()[top].median / top
