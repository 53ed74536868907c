"""Attacks that measure the risks: evasion (ML01) today; inference, extraction, poisoning later."""
