"""robocall: a self-hosted robo-call platform on FreeSWITCH speaking the B3 Robo call API."""

__version__ = "0.1.0"
