# Exercise 09.2: scatter the payload once; every task gets the future, not the bytes.
import zlib


def answer_scatter(client, payload, tasks):
    [remote] = client.scatter([payload], broadcast=True)
    futures = [client.submit(zlib.crc32, remote, pure=False) for _ in range(tasks)]
    return client.gather(futures)
