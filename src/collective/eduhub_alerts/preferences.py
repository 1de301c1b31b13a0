"""Each user's own choice: live alerts in the browser on or off.

Kept as a member property, so it follows the user to every browser.
"""

MUTED_PROPERTY = "eduhub_alerts_muted"


def is_muted(member) -> bool:
    return bool(member.getProperty(MUTED_PROPERTY, False))


def set_muted(member, muted: bool) -> None:
    member.setMemberProperties({MUTED_PROPERTY: bool(muted)})
