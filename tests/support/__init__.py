"""What the tests share besides fixtures: test databases, real server processes, accounts."""
