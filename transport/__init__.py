"""The library UDFs import to send and receive frames between vertices."""
