# Exercise 10.1: the shortest task that reached 80 % efficiency on ProcessPoolExecutor.
efficiency = result["summary"]["task_size"]["efficiency"]["ProcessPoolExecutor"]
reached = [float(ms) for ms in efficiency if efficiency[ms] >= 0.8]
answer = min(reached) if reached else None
