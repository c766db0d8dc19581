row = next(r for r in shed_rows if r["shed"] and r["level"] == "above")
answer_shed = row["http_503"]
