"""The one place git is run: listing the files git sees, and diffs."""
