# Exercise 07.2: the creator owns the segment; the others only close() it.
answer_unlink = "the process that created it"
