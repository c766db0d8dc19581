# Exercise 09.2: median time sending with every task ÷ median time scattering once.
import statistics

sent = statistics.median(r["seconds"] for r in scatter_rows if r["way"] == "sent with every task")
scattered = statistics.median(r["seconds"] for r in scatter_rows if r["way"] == "scattered once")
answer_ratio = sent / scattered
