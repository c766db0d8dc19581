# Exercise 06.3: one worker per usable CPU; a timeout a few times the slowest request;
# recycle after a few hundred requests, spread by a jitter of up to half of that.
from helpers.core import machine

answer_gunicorn = {
    "workers": machine.usable_cpus(),
    "timeout": 10,
    "max_requests": 500,
    "max_requests_jitter": 50,
}
