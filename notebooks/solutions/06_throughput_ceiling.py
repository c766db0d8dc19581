# Exercise 06.2: each CPU finishes one request every `ms` milliseconds.
answer_ceiling = card.usable_cpus * 1000 / 10
