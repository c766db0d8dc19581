# Exercise 10.3: every configuration once per round, the order rotated each round,
# each call timed on its own; then the median and the range of each.
import statistics
import time


def answer_side_by_side(configurations, repeats):
    names = list(configurations)
    seconds = {name: [] for name in names}
    for repeat in range(repeats):
        first = repeat % len(names)
        for name in names[first:] + names[:first]:
            start = time.perf_counter()
            configurations[name]()
            seconds[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times), min(times), max(times))
            for name, times in seconds.items()}
