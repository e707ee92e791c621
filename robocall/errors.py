"""One exception tree for robocall.

Every error robocall raises on purpose derives from :class:`RobocallError`. The HTTP layer
maps these classes to status codes in one place (``robocall.api.errors``); nothing else decides
an HTTP status.
"""

from __future__ import annotations


class RobocallError(Exception):
    """Base of every error robocall raises on purpose."""


class ConfigError(RobocallError):
    """The settings (environment, flags, files) are missing or contradictory."""


# --- client input and the REST contract -------------------------------------------------------


class InputError(RobocallError):
    """Client input breaks the contract; ``path`` is the JSON path of the fault."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


class AuthError(RobocallError):
    """The API key is missing or unknown."""


class Forbidden(RobocallError):
    """The credential is valid but may not do this (a tenant key on an operator's setting)."""


class NotFound(RobocallError):
    """No such resource for this organization (another organization's look the same)."""


class Conflict(RobocallError):
    """The resource exists with other content (a requestId reused with another body)."""


class PayloadTooLarge(RobocallError):
    """The request body exceeds the configured size limit."""


class RateLimited(RobocallError):
    """The API key has sent more requests than its rate allows."""


class ApiUnreachable(RobocallError):
    """No robocall API answers at the URL a client was given (refused, timed out, no host)."""


class ApiFailed(RobocallError):
    """The robocall API answered a client with a status it does not expect (5xx and the like)."""


# --- storage ----------------------------------------------------------------------------------


class StoreError(RobocallError):
    """The database refused or failed an operation robocall needed."""


# --- the switch (Event Socket) ----------------------------------------------------------------


class SwitchError(RobocallError):
    """Base of every Event Socket failure."""


class ProtocolError(SwitchError):
    """The bytes on the Event Socket are not a valid frame."""


class SwitchAuthError(SwitchError):
    """FreeSWITCH refused the Event Socket password."""


class SwitchDisconnected(SwitchError):
    """The Event Socket connection is gone; pending commands fail with this."""


class SwitchNotConnected(SwitchDisconnected):
    """There is no Event Socket connection: the command was never sent."""


class SwitchTimeout(SwitchError):
    """FreeSWITCH did not answer a command within its deadline."""


class CommandFailed(SwitchError):
    """FreeSWITCH answered a command with ``-ERR``; ``reply`` is its text."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        super().__init__(reply)


class UnsafeValue(RobocallError):
    """A value bound for an Event Socket command carries characters that could inject."""


# --- call flows and calls ---------------------------------------------------------------------


class FlowError(RobocallError):
    """A call-flow machine was fed an event that is illegal in its state."""


class TtsError(RobocallError):
    """A message could not be rendered to audio."""


class DispatchStopped(RobocallError):
    """Dispatching stopped (shutdown) while a call waited for its turn to be sent."""


class LinesTaken(DispatchStopped):
    """The organization's lines filled up (other apps' calls) while a call waited to be sent."""


class NodeBusy(RobocallError):
    """Another live process holds this node's lease: one node id, one dialer."""


class LeaseLost(StoreError):
    """This process no longer holds its node's lease (a peer took it over): it must not dial."""


class WebhookTargetRefused(RobocallError):
    """A webhook URL's host is, or resolves to, an address robocall may not post to."""
