"""Tables: semantic operators over pandas DataFrames, files in and out, and durable batch jobs."""
