"""How easy a password is to guess: zxcvbn's estimate, with the words French users reach for.

zxcvbn (pinned in requirements.lock) estimates the guesses an attacker needs, knowing what people
actually choose: common passwords, dictionary words, names, dates, sequences, repeats and keyboard
walks (QWERTY, Dvorak, keypads). It runs offline: nothing leaves the gateway (no breach API).

Its lists are English; a French CCTV centre adds what its users type: AZERTY rows and walks, the
commonest French passwords, and the service's own vocabulary. They are given to zxcvbn as "user
inputs", which it treats as a dictionary of rank 1: any password built around one of them is
estimated at the cost of guessing the rest.

The bar is zxcvbn's score 3, "safely unguessable" (>= 10^8 guesses): online, the account lock
allows 5 guesses per 15 minutes; offline, against a stolen database, Argon2id at 64 MiB costs
about 10 guesses per second per core, so 10^8 guesses are ~115 core-days per account. It refuses
"123456789012" (10^4.2), "password1234" (10^4.1) and "azertyuiop12" (10^5.8).
"""

from zxcvbn import zxcvbn

MIN_LENGTH = 12
MIN_SCORE = 3
# zxcvbn's own ceiling (its matching is quadratic): a longer passphrase is judged on its start.
_ESTIMATED_CHARS = 72

# AZERTY: rows, columns and the usual walks; the digits row unshifted (&é"'(-è_çà).
_AZERTY = (
    "azertyuiop",
    "qsdfghjklm",
    "wxcvbn",
    "&é\"'(-è_çà",
    "aqwzsxedcrfvtgbyhnujikolpm",
    "azqswxedcrfvtgbyhn",
    "azsxdcfvgbhnjkl",
    "wqsazerdfcxv",
    "poiuytreza",
    "mlkjhgfdsq",
)
# The commonest French passwords (public breach statistics) and the words of the trade.
_FRENCH = (
    "motdepasse",
    "azerty",
    "soleil",
    "bonjour",
    "doudou",
    "chouchou",
    "loulou",
    "coucou",
    "marseille",
    "paris",
    "lyon",
    "toulouse",
    "nicolas",
    "camille",
    "jetaime",
    "amour",
    "chocolat",
    "olympiquedemarseille",
    "allezlom",
    "psg",
    "france",
    "bienvenue",
    "police",
    "policemunicipale",
    "gendarmerie",
    "mairie",
    "prefecture",
    "commissariat",
    "videoprotection",
    "videosurveillance",
    "supervision",
    "camera",
    "cameras",
    "operateur",
    "superviseur",
    "csu",
)
LOCAL_WORDS = _AZERTY + _FRENCH


def weakness(password: str, personal: list[str]) -> str | None:
    """Why the password is too easy to guess, or None when it is strong enough.

    personal: what an attacker knows of its owner (username, display name): zxcvbn counts them too.
    """
    if len(password) < MIN_LENGTH:
        return f"the password must have at least {MIN_LENGTH} characters"
    for word in personal:
        if len(word) >= 2 and word.lower() in password.lower():
            return "the password must not contain your username or name"
    if len(set(password)) < 6:
        return "the password is too repetitive"
    inputs = [w for w in personal if w] + list(LOCAL_WORDS)
    estimate = zxcvbn(password[:_ESTIMATED_CHARS], user_inputs=inputs)
    if estimate["score"] >= MIN_SCORE:
        return None
    feedback = estimate["feedback"]
    hint = " ".join(part for part in [feedback.get("warning") or "", *(feedback.get("suggestions") or [])] if part)
    return f"the password is too easy to guess (about 10^{estimate['guesses_log10']:.0f} guesses)" + (
        f": {hint}" if hint else ""
    )
