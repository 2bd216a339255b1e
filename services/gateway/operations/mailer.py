"""Sending mail through the city's relay (CSU_SMTP_URL): smtp:// (STARTTLS when the relay offers it)
or smtps:// (TLS from the first byte), credentials in the URL when the relay wants them.

Blocking (smtplib): callers run `send` in a thread. Errors are MailError with a message fit for the
register's "not sent because..." column: never the URL, never a credential.
"""

import ipaddress
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit


class MailError(Exception):
    """The mail could not be handed to the relay; the message says why."""


@dataclass(frozen=True)
class Relay:
    host: str
    port: int
    implicit_tls: bool
    username: str = ""
    password: str = field(default="", repr=False)

    def describe(self) -> str:
        return f"{'smtps' if self.implicit_tls else 'smtp'}://{self.host}:{self.port}"


def parse_relay(url: str) -> Relay:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise MailError("CSU_SMTP_URL is not a valid smtp:// or smtps:// URL") from exc
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise MailError("CSU_SMTP_URL must be smtp://host[:port] or smtps://host[:port]")
    implicit = parts.scheme == "smtps"
    return Relay(
        host=parts.hostname,
        port=port or (465 if implicit else 587),
        implicit_tls=implicit,
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def send(relay: Relay, message: EmailMessage, timeout_s: float) -> None:
    context = ssl.create_default_context()
    try:
        if relay.implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(relay.host, relay.port, timeout=timeout_s, context=context)
        else:
            client = smtplib.SMTP(relay.host, relay.port, timeout=timeout_s)
        with client:
            client.ehlo()
            secure = relay.implicit_tls
            if not secure and client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
                secure = True
            if relay.username:
                if not secure and not _loopback(relay.host):
                    raise MailError(f"the relay {relay.describe()} offers no TLS: the credentials were not sent")
                client.login(relay.username, relay.password)
            refused = client.send_message(message)
            if refused:
                raise MailError(f"the relay refused recipient(s): {', '.join(sorted(refused))}")
    except MailError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(f"the relay {relay.describe()} refused the credentials ({exc.smtp_code})") from exc
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        raise MailError(f"the relay {relay.describe()} answered {exc.smtp_code} {text[:200]}") from exc
    except (TimeoutError, smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        raise MailError(f"the relay {relay.describe()} cannot be reached: {exc or type(exc).__name__}") from exc
