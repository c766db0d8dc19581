# Exercise 04.1: n_jobs=-1 starts joblib.cpu_count() workers.
import joblib

answer_n_jobs = joblib.cpu_count()
