# Exercise 02.2: hold the lock across the read, the sleep and the write.
import time


def answer_add_safely(counter, lock, increments):
    for _ in range(increments):
        with lock:
            current = counter.value
            time.sleep(0)
            counter.value = current + 1
