# Exercise 03.2: one child SeedSequence per task, made in the parent from `seed`: every
# task gets its own generator, and the same `seed` gives the same numbers again.
import numpy as np

from helpers.tasks import pitfalls


def answer_draws(pool, tasks, seed):
    seeds = np.random.SeedSequence(seed).spawn(tasks)
    return list(pool.map(pitfalls.seeded_draw, seeds))
