# Exercise 10.2: the colleague's machine card says 1 usable CPU (a quota of 1 CPU on a
# 16-CPU host). Nothing can run in parallel until that is fixed; small tasks come second.
answer = "one-cpu"
