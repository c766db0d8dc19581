# Exercise 03b.1: multiprocessing.Pool's own default is tasks / (4 × workers) chunks'
# worth; raise it to at least message cost / (5 % of a task) when messages are dear.
# Anything from the smallest to the largest passes.
import math


def answer_chunksize(task_seconds, tasks, message_seconds, workers):
    smallest = math.ceil(message_seconds / (0.05 * task_seconds))  # overhead ≤ 5 %
    largest = tasks // (4 * workers)  # at least 4 chunks per worker
    return max(1, smallest, largest)
