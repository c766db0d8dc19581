# Exercise 07.1: hand the worker a name, not the data; the creator closes and unlinks.
from multiprocessing import shared_memory

from helpers.tasks import transfer


def answer_share(data, pool):
    segment = shared_memory.SharedMemory(create=True, size=len(data))
    try:
        segment.buf[:len(data)] = data
        return pool.submit(transfer.checksum_segment, segment.name, len(data)).result()
    finally:
        segment.close()
        segment.unlink()
