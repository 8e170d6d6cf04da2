from compound.models.ratelimit import RateLimiter


def test_requests_per_minute_bucket_empties_then_asks_to_wait():
    lim = RateLimiter(requests_per_minute=3, tokens_per_minute=None)
    assert [lim._wait_needed(0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = lim._wait_needed(0)
    assert 0 < wait <= 20.0  # one request refills in 60/3 s


def test_tokens_per_minute_bucket_counts_tokens():
    lim = RateLimiter(requests_per_minute=None, tokens_per_minute=1000)
    assert lim._wait_needed(600) == 0.0
    wait = lim._wait_needed(600)  # 400 left: 200 tokens short, at 1000/min
    assert 11.0 <= wait <= 12.5


def test_no_limits_never_wait():
    lim = RateLimiter(None, None)
    assert all(lim._wait_needed(10_000) == 0.0 for _ in range(100))
