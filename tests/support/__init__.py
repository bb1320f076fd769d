"""What several test modules share: builders of reply items and replies, and a scripted model."""
