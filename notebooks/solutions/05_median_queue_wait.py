# Exercise 05.1: queue wait = started - submitted, per task; then the median.
import statistics

answer_wait = statistics.median(r.started - r.submitted for r in records)
