from helpers.servers.web_app import Busy, burn_cpu


async def bounded_offload(ms, pool, gate):
    if gate.in_flight >= gate.limit:  # full: say no at once (503 + Retry-After)
        raise Busy()
    gate.in_flight += 1  # before the first await: no other request can slip in between
    try:
        return await pool.submit_async(burn_cpu, ms)  # the loop stays free meanwhile
    finally:
        gate.in_flight -= 1  # even if the task failed or its worker died


answer_offload = bounded_offload
