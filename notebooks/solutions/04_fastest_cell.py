# Exercise 04.3: the (workers, threads) pair with the fewest seconds.
answer_cell = min(heat["seconds"], key=heat["seconds"].get)
