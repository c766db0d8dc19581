# Exercise 01.2: hand the work to the pool and await the future: the loop stays free.
import asyncio

from helpers.core import workloads


async def answer_offload(pool, units):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pool, workloads.python_loop, units)
