# Exercise 00.1: the usable CPUs, read from the machine card (or machine.usable_cpus()).
answer_workers = card.usable_cpus
