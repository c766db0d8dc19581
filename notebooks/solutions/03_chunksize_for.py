# Exercise 03.2: at least message cost / (5 % of a task), at most tasks / (4 × workers);
# anything between the two is right. The smallest such chunk size:
import math

message = pickle_rows[0]["round_trip_s"]
answer_chunksize = math.ceil(message / (0.05 * 0.0002))
