"""The GPU check for a lent device machine and its parts."""
