# Exercise 03b.2: Karp–Flatt, e = (1/S - 1/p) / (1 - 1/p), at the most workers measured.
p = max(w for w in sweep.workers if w <= sweep.usable_cpus)
S = sweep.speedups()[p].median
answer_fraction = (1 / S - 1 / p) / (1 - 1 / p) if p > 1 else None
