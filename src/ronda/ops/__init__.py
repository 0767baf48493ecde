"""Operations: what an operator watches (scrape-time metrics) rather than what users call."""
