"""Placeholder entry point; the full tool is in progress."""


def main() -> int:
    print("billing: sign and send contract events, run sweeps, show servers and accounts")
    return 0
