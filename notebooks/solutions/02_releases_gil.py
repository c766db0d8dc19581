# Exercise 02.1: everything but pure Python releases the GIL in its C code.
answer_gil = {"sha256", "zlib", "pillow", "numpy"}
