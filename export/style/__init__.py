"""Fast neural style: the cost function and the feed-forward transformer networks (torch)."""
