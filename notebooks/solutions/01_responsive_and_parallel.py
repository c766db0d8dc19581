# Exercise 01.1: processes keep the loop free and run the CPU work on other cores.
answer_strategy = "WorkerPool"  # "ProcessPoolExecutor" is right too; with the GIL off, "to_thread"
