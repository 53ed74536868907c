"""Defences that reduce the OWASP ML risks: training-time (DP-SGD) and output hardening."""
